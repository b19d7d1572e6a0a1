# The sync worker keeps the idempotency records of ves.upsert, the stock and
# the order functions: it makes the day partitions ahead and drops a day
# once every record in it has expired (ves.idempotency_ttl), without
# touching records still in force. It also expires order events held longer
# than the sync setting order_hold, and drops the month partitions of
# ves.events past ves.retention_months (once a day, starting at once).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

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

# Months of events far past ves.retention_months (12 by default).
sql(q{SELECT ves.ensure_partitions('2020-03-15')});
my $old_months = q{SELECT count(*) FROM ves.event_partitions WHERE month_end <= '2021-01-01'};
cmp_ok(sql($old_months), '>=', 3, 'months of 2020 exist before the worker runs');

ok(enable_worker($node), 'the sync worker runs');
ok(wait_until(30, sub { sql($old_months) == 0 }), 'the worker dropped the months past retention');
cmp_ok(sql(q{SELECT count(*) FROM ves.maintenance_log WHERE action = 'drop_partition' AND detail LIKE '%2020%'}),
	'>=', 3, 'and logged each drop');
cmp_ok(sql(q{SELECT count(*) FROM ves.event_partitions WHERE month_end > now()}), '>=', 1,
	'the current months are kept');
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

# Dropping a day locks the parent table; a keyed call in flight holds it. The
# maintenance gives up after its short lock wait instead of queueing every
# keyed call behind it, and drops the day on a later round.
my $holder = IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'),
	'-c', 'BEGIN',
	'-c', qq{SELECT ves.upsert('$tenant', '$store', 'product', 'p2', '{"a": 1}', idempotency_key => 'held-open')},
	'-c', 'SELECT pg_sleep(4)', '-c', 'COMMIT' ], '>', \my $holder_out, '2>', \my $holder_err);
ok(wait_until(10, sub { sql(q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                               WHERE c.relname = 'idempotency_records' AND l.pid <> pg_backend_pid()}) > 0 }),
	'a keyed call holds the records table');
my $t0 = time;
is(sql(q{SELECT ves.expire_idempotency_records(now() + interval '30 days')}), 0,
	'maintenance drops nothing while the table is in use');
cmp_ok(time - $t0, '<', 3, 'and does not wait for the transaction');
$holder->finish;
cmp_ok(sql(q{SELECT ves.expire_idempotency_records(now() + interval '30 days')}), '>=', 1,
	'once it ends, the expired days are dropped');

# The same for the month partitions of ves.events: an append in flight holds
# the table; a new month is made only when the lock comes quickly.
my $appender = IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'),
	'-c', 'BEGIN',
	'-c', qq{SELECT ves.append('$tenant', '$store', 'product', 'p3', 'product.noted', '{}')},
	'-c', 'SELECT pg_sleep(4)', '-c', 'COMMIT' ], '>', \my $appender_out, '2>', \my $appender_err);
ok(wait_until(10, sub { sql(q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                               WHERE c.relname = 'events' AND l.pid <> pg_backend_pid()}) > 0 }),
	'an append in flight holds ves.events');
my $months_before = sql(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'ves.events'::regclass});
$t0 = time;
my ($left_for_later, $timeout_after) = split /\n/, sql(q{SET lock_timeout = '7s';
  SELECT ves.ensure_partitions(now() + interval '12 months', '100ms')
           = date_trunc('month', (now() + interval '12 months') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  SHOW lock_timeout;});
is($left_for_later, 't', 'a busy ves.events: the new month is left for later, and the range returned ends before it');
cmp_ok(time - $t0, '<', 3, 'without waiting for the append');
is(sql(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'ves.events'::regclass}), $months_before,
	'and nothing half-made is left behind');
is($timeout_after, '7s', 'the session keeps its own lock_timeout');
$appender->finish;
is(sql(q{SELECT ves.ensure_partitions(now() + interval '12 months', '100ms')
           > now() + interval '12 months'}), 't', 'once the append commits, the months are made');

$node->stop;
done_testing();
