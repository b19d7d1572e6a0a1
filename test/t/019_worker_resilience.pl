# The sync worker survives what one destination or row does to it, stops
# gracefully, and waits quietly for a database that does not exist yet.
# (1) A destination row corrupted behind the functions' back (a header with a
# non-string value) next to a healthy one: the healthy one delivers all its
# events, the bad one's rows and the destination show the reason, the worker
# keeps its pid. (2) ves.stop_worker() while a slow endpoint answers: the
# answers received are recorded synced, no row stays leased, no FATAL.
# (3) A database listed in ves.databases before it exists: one LOG line, no
# FATAL per retry, and delivery once it and the extension are created.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c9';
my $store = '00000000-0000-0000-0000-0000000000d9';

my $node = new_node('worker_resilience');
sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }
sub log_since { return substr(slurp_file($node->logfile), $_[0]); }
my $sink = start_sink();

sub append { my ($db, $n, $prefix) = @_; return append_orders(sub { sql($_[0], $db) }, $tenant, $store, $n, $prefix); }

sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 60}')});
sql("SELECT ves.create_destination('good', 'webhook', '" . $sink->url('/good') . "', '{}')");
sql("SELECT ves.create_destination('bad', 'webhook', '" . $sink->url('/bad') . "', '{}')");
ok(enable_worker($node), 'the sync worker runs');
my ($pid) = worker_pids($node);

# --- (1) one bad destination ----------------------------------------------------------------

my $offset = -s $node->logfile;
# Written directly, as only a superuser could: the table's CHECK (an object)
# holds, the worker's parser refuses a non-string header value.
sql(q{BEGIN;
      UPDATE ves.destinations SET headers = '{"X-Count": 7}' WHERE name = 'bad';
      SELECT ves._destinations_changed();
      COMMIT;});
my @ids = append('postgres', 20, 'mixed');
ok(wait_until(30, sub { $sink->arrived('/good', @ids) == 20 }), 'the healthy destination receives all 20 events');
ok( wait_until(30, sub {
			sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
			      WHERE d.name = 'good' AND o.status = 'synced'}) == 20 }),
	'and they are recorded synced');
ok( wait_until(30, sub {
			sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
			      WHERE d.name = 'bad' AND o.status IN ('failed', 'dead')
			        AND o.last_error ~ 'header "?X-Count"? must (have a string value|be a string)'}) == 20 }),
	'the bad destination\'s 20 rows are failed, with the reason in last_error');
like(sql(q{SELECT last_error FROM ves.destinations WHERE name = 'bad'}), qr/header "?X-Count"? must (have a string value|be a string)/,
	'so is the destination');
is(scalar $sink->requests('/bad'), 0, 'nothing was sent to it');
is_deeply([ worker_pids($node) ], [$pid], 'the worker kept its pid');
my $log = log_since($offset);
like($log, qr/pg_ves worker: destination "bad" \(id \d+\): invalid destination configuration/,
	'the log names the destination and the reason');
like($log, qr/pg_ves worker: outbox row \d+ for destination "bad"/, 'and the rows that failed');
unlike($log, qr/FATAL|terminated by signal/, 'no FATAL, no crash');

# Fixed through the function, the destination works again.
sql(q{SELECT ves.alter_destination('bad', '{"headers": {"X-Count": "7"}}')});
sql(q{SELECT ves.retry_events(array_agg(o.id)) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
      WHERE d.name = 'bad'});
ok(wait_until(30, sub { $sink->arrived('/bad', @ids) == 20 }), 'once fixed, its rows are delivered');
sql(q{SELECT ves.drop_destination('bad')});

# A database error while recording one row: a trigger refuses to mark one
# row synced. The other rows of its batch are recorded all the same.
$offset = -s $node->logfile;
sql(q{CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.entity_id = 'poison-3' AND NEW.status = 'synced' THEN
          RAISE EXCEPTION 'poisoned row' USING DETAIL = 'refused by the test trigger';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER poison BEFORE UPDATE ON ves.outbox FOR EACH ROW EXECUTE FUNCTION public.poison();});
@ids = append('postgres', 10, 'poison');
ok(wait_until(30, sub { $sink->arrived('/good', @ids) == 10 }), 'all 10 events of the poisoned batch are sent');
ok( wait_until(30, sub {
			sql(q{SELECT count(*) FROM ves.outbox WHERE entity_id LIKE 'poison-%' AND status = 'synced'}) == 9 }),
	'the 9 rows the database accepts are recorded synced');
$log = log_since($offset);
like($log, qr/cannot record outbox row \d+ \(status synced\).*poisoned row \(SQLSTATE P0001\)/,
	'the log names the row that could not be recorded, with the error');
like($log, qr/DETAIL:  refused by the test trigger/, 'and the error\'s detail');
is_deeply([ worker_pids($node) ], [$pid], 'the worker kept its pid');
unlike($log, qr/FATAL/, 'no FATAL');
sql(q{DROP TRIGGER poison ON ves.outbox});

# --- (2) a graceful stop while transfers are in flight -----------------------------------------

$sink->control(mode => 'slow', delay_ms => 1000, path => '/good');
my $before = scalar $sink->requests('/good');
@ids = append('postgres', 60, 'slow');
ok($sink->wait_for($before + 1, '/good', 20), 'the worker is sending to the slow endpoint');
$offset = -s $node->logfile;
my $t0 = time;
is(sql('SELECT ves.stop_worker()'), 't', 'ves.stop_worker() mid-drain');
my $took = time - $t0;
cmp_ok($took, '<', 8, sprintf('it returns within the drain bound (%.1f s)', $took));
is_deeply([ worker_pids($node) ], [], 'the worker is gone');
is(sql(q{SELECT count(*) FROM ves.outbox WHERE lease_until IS NOT NULL OR leased_by IS NOT NULL}), 0,
	'no row is left leased (nothing waits out lease_seconds)');
is(sql(q{SELECT count(*) FROM ves.list_outbox_events('syncing')}), 0, 'none shows as syncing');
my @received = grep { my $id = $_; grep { $_ eq $id } @ids }
  map { $_->{headers}{'webhook-id'} } $sink->requests('/good');
my $synced = sql("SELECT count(*) FROM ves.outbox WHERE status = 'synced' AND event_id = ANY ('{"
	  . join(',', @ids) . "}'::uuid[])");
cmp_ok(scalar(@received), '>', 0, scalar(@received) . ' requests reached the endpoint before the stop');
is($synced, scalar(@received), 'every answer received before the stop is recorded synced');
cmp_ok($synced, '<', 60, 'the stop came mid-drain');
$log = log_since($offset);
unlike($log, qr/FATAL/, 'no FATAL in the server log for the stop');
like($log, qr/LOG:  pg_ves worker for database "postgres" stopped/, 'a LOG line says it stopped');

$sink->clear('/good');
is(sql('SELECT ves.start_worker()'), 't', 'ves.start_worker()');
ok(wait_until(30, sub { $sink->arrived('/good', @ids) == 60 }), 'the rest is delivered after the restart');

# --- (3) a database that does not exist yet ---------------------------------------------------

$offset = -s $node->logfile;
sql("ALTER SYSTEM SET ves.databases = 'postgres, later'");
sql('SELECT pg_reload_conf()');
sleep 15;
$log = log_since($offset);
my $fatals = () = $log =~ /FATAL:  database "later" does not exist/g;
is($fatals, 0, 'no FATAL "database does not exist" for the missing database');
my $notes = () = $log =~ /LOG:  pg_ves launcher: database "later" listed in ves.databases does not exist yet/g;
is($notes, 1, 'one LOG line says it waits for it');
is_deeply([ worker_pids($node, 'later') ], [], 'no worker runs for it');
sql('CREATE DATABASE later');
sql('CREATE EXTENSION pg_ves', 'later');
sql("SELECT ves.create_destination('hook', 'webhook', '" . $sink->url('/later') . "', '{}')", 'later');
ok(wait_until(30, sub { worker_pids($node, 'later') }), 'its worker starts once the database exists');
my @later = append('later', 5, 'later');
ok(wait_until(30, sub { $sink->arrived('/later', @later) == 5 }), 'and delivers its events');
$log = log_since($offset);
$fatals = () = $log =~ /FATAL/g;
is($fatals, 0, 'no FATAL at all meanwhile');

$node->stop;
$log = slurp_file($node->logfile);
my @crashes = grep { /terminated by signal/ } split /\n/, $log;
is_deeply(\@crashes, [], 'no process terminated by a signal');
unlike($log, qr/FATAL:  terminating background worker "pg_ves/, 'the server shutdown stopped the pg_ves processes without FATAL');

done_testing();
