# The sync worker keeps the idempotency records of ves.upsert, the stock and
# the order functions: it makes the day partitions ahead and drops a day
# once every record in it has expired (ves.idempotency_ttl), without
# touching records still in force.
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

ok(enable_worker($node), 'the sync worker runs');
ok(wait_until(30, sub { sql("SELECT to_regclass('ves.$old') IS NULL") eq 't' }),
	'the worker dropped the expired day');
ok(wait_until(30, sub { day_partitions() >= 4 }), 'the worker made today and the days ahead');
is(sql(q{SELECT count(*) FROM ves.idempotency_records WHERE idempotency_key = 'live'}), 1,
	'the record in force is kept');
is(sql(qq{SELECT outcome || '/' || original_outcome FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"a": 1}',
          idempotency_key => 'live')}), 'duplicate/applied', 'and still answers a repeat');

$node->stop;
done_testing();
