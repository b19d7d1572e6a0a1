# The sync worker keeps the idempotency records of ves.upsert, the stock and
# the order functions: it makes the day partitions ahead and drops a day
# once every record in it has expired (ves.idempotency_ttl), without
# touching records still in force. It also expires order events held longer
# than the sync setting order_hold.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c5';
my $store = '00000000-0000-0000-0000-0000000000d5';

my $node = new_node('worker_housekeeping');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sub day_partitions
{
	return sql(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'ves.idempotency_records'::regclass});
}

# An old day, as a keyed call made ten days ago would have left it.
sql(q{SELECT ves.ensure_idempotency_partitions(now() - interval '10 days', 0)});
sql(qq{INSERT INTO ves.idempotency_records (tenant_id, idempotency_key, operation, request_hash, response,
         created_at, expires_at)
       VALUES ('$tenant', 'old-key', 'upsert', '\\x00', '{}', now() - interval '10 days', now() - interval '9 days')});
my $old = sql(q{SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'ves.idempotency_records'::regclass});
is(day_partitions(), 1, 'only the old day exists before the worker runs');

# A record in force today.
is(sql(qq{SELECT outcome FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"a": 1}', idempotency_key => 'live')}),
	'applied', 'a keyed upsert today');

# Two early platform events: one held eight days ago, one just now.
sql(qq{SELECT ves.record_order_event('$tenant', '$store', 'o-old', 'order.delivered', source => 'shopify')});
sql(qq{SELECT ves.record_order_event('$tenant', '$store', 'o-new', 'order.delivered', source => 'shopify')});
sql(q{UPDATE ves.held_order_events SET held_at = now() - interval '8 days' WHERE order_id = 'o-old'});

ok(enable_worker($node), 'the sync worker runs');
ok(wait_until(30, sub { sql("SELECT to_regclass('ves.$old') IS NULL") eq 't' }),
	'the worker dropped the expired day');
ok(wait_until(30, sub { day_partitions() >= 4 }), 'the worker made today and the days ahead');
is(sql(q{SELECT count(*) FROM ves.idempotency_records WHERE idempotency_key = 'live'}), 1,
	'the record in force is kept');
is(sql(qq{SELECT outcome || '/' || original_outcome FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"a": 1}',
          idempotency_key => 'live')}), 'duplicate/applied', 'and still answers a repeat');

ok(wait_until(30, sub { sql(q{SELECT status FROM ves.held_order_events WHERE order_id = 'o-old'}) eq 'expired' }),
	'the worker expired the event held past order_hold');
is(sql(q{SELECT status FROM ves.held_order_events WHERE order_id = 'o-new'}), 'held', 'and kept the recent one');

$node->stop;
done_testing();
