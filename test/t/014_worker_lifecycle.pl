# The sync worker's life cycle as an operator drives it: ves.stop_worker()
# stops it for good until ves.start_worker(); a reload that changes
# ves.databases starts and stops workers; SIGHUP is handled without a
# restart; DROP DATABASE of a database with a running worker succeeds at
# once; DROP EXTENSION under a running worker neither crashes it nor makes it
# restart in a loop, and CREATE EXTENSION afterwards resumes delivery; a
# drop under an idle worker is said once in the log, not as an error of
# every periodic step in every round.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c1';
my $store = '00000000-0000-0000-0000-0000000000d1';

my $node = new_node('worker_lifecycle');
sub sql { return $node->safe_psql($_[1] // 'postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'the sync worker runs');

sub setup_database
{
	my ($db) = @_;
	sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')}, $db);
	sql("SELECT ves.create_destination('hook', 'webhook', '" . $sink->url("/$db") . "', '{}')", $db);
}
setup_database('postgres');

# Appends $n events in $db; returns their ids.
sub append
{
	my ($db, $n, $prefix) = @_;
	return split /\n/, sql("SELECT event_id FROM generate_series(1, $n) g,
	  LATERAL ves.append('$tenant', '$store', 'Order', '$prefix-' || g, 'order.created', '{}')", $db);
}

sub arrived
{
	my ($db, @ids) = @_;
	my %at = map { ($_->{headers}{'webhook-id'} // '') => 1 } $sink->requests("/$db");
	return scalar grep { $at{$_} } @ids;
}

sub set_databases
{
	my ($list) = @_;
	sql("ALTER SYSTEM SET ves.databases = '$list'");
	sql('SELECT pg_reload_conf()');
}

# The launcher has no database connection, so pg_stat_activity does not
# show it; find it among the postmaster's children by its process title.
sub launcher_pid
{
	my $kids = children_of(postmaster_pid($node));
	my ($pid) = grep { $kids->{$_} =~ /pg_ves launcher/ } keys %$kids;
	return $pid;
}

sub log_since
{
	my ($offset) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $offset);
}

# --- ves.stop_worker / ves.start_worker -------------------------------------------

my ($first) = worker_pids($node);
is(sql('SELECT ves.stop_worker()'), 't', 'ves.stop_worker() stops the running worker');
is_deeply([ worker_pids($node) ], [], 'it is gone from pg_stat_activity when stop_worker returns');
is(sql(q{SELECT stopped::text || '|' || (pid IS NULL)::text FROM ves.worker_status WHERE database = 'postgres'}),
	'true|true', 'ves.worker_status shows it stopped');
my @while_stopped = append('postgres', 5, 'stopped');
my $restarted = 0;
my $t0 = time;
while (time - $t0 < 10)
{
	$restarted ||= scalar worker_pids($node);
	usleep(250_000);
}
ok(!$restarted, 'it stays stopped for 10 s (the launcher does not restart it)');
is(arrived('postgres', @while_stopped), 0, 'nothing is delivered while it is stopped');
is(sql('SELECT ves.start_worker()'), 't', 'ves.start_worker() starts it');
my ($second) = worker_pids($node);
ok($second && $second != $first, 'a new worker runs when start_worker returns');
is(sql(q{SELECT stopped::text || '|' || pid FROM ves.worker_status WHERE database = 'postgres'}), "false|$second",
	'ves.worker_status shows it running');
ok(wait_until(15, sub { arrived('postgres', @while_stopped) == 5 }), 'the events appended meanwhile are delivered');
# The launcher wakes at least every 5 s; by then it must have noticed that
# the database has its worker again.
sleep 7;
my @workers = worker_pids($node);
is(scalar(@workers), 1, 'still exactly one worker for postgres after the launcher\'s next round')
  or diag("workers for postgres: @workers; ves.worker_status: "
	  . sql(q{SELECT pid FROM ves.worker_status WHERE database = 'postgres'}));
if (@workers > 1)
{
	# Keep the rest of the test meaningful: end the workers ves.worker_status
	# does not know about, which ves.stop_worker() could not reach.
	sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_ves worker'
	      AND datname = 'postgres' AND pid <> (SELECT pid FROM ves.worker_status WHERE database = 'postgres')});
	wait_until(10, sub { worker_pids($node) == 1 });
	($second) = worker_pids($node);
}

# --- SIGHUP ---------------------------------------------------------------------------

my $launcher = launcher_pid();
ok($launcher, 'the launcher process is found');
ok(kill('HUP', $second) && kill('HUP', $launcher), 'SIGHUP to the worker and the launcher');
sql('SELECT pg_reload_conf()');
sleep 1;
is_deeply([ worker_pids($node) ], [$second], 'the worker survives SIGHUP (same pid, still the only one)');
is(launcher_pid(), $launcher, 'so does the launcher');
my @after_hup = append('postgres', 3, 'hup');
ok(wait_until(10, sub { arrived('postgres', @after_hup) == 3 }), 'and delivery goes on');

# --- reload with a changed ves.databases -------------------------------------------------

sql('CREATE DATABASE db2');
sql('CREATE EXTENSION pg_ves', 'db2');
setup_database('db2');
set_databases('postgres, db2');
ok(wait_until(15, sub { worker_pids($node, 'db2') }), 'adding db2 to ves.databases and reloading starts its worker');
my @db2 = append('db2', 3, 'db2');
ok(wait_until(10, sub { arrived('db2', @db2) == 3 }), 'db2\'s worker delivers db2\'s events');
set_databases('postgres');
ok(wait_until(15, sub { !worker_pids($node, 'db2') }), 'removing db2 from ves.databases and reloading stops its worker')
  or sql(q{SELECT ves.stop_worker('db2')});
is_deeply([ worker_pids($node) ], [$second], 'the worker of postgres is left alone');

# --- DROP DATABASE of a database with a running worker --------------------------------------

sql('CREATE DATABASE db3');
sql('CREATE EXTENSION pg_ves', 'db3');
setup_database('db3');
set_databases('postgres,db3');
ok(wait_until(15, sub { worker_pids($node, 'db3') }), 'db3 has a worker');
my $offset = -s $node->logfile;
$t0 = time;
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE db3');
my $took = time - $t0;
is($rc, 0, 'DROP DATABASE db3 succeeds while its worker runs') or diag($err);
cmp_ok($took, '<', 5, sprintf('and promptly (%.1f s)', $took));
sleep 3;
is_deeply([ worker_pids($node, 'db3') ], [], 'no worker for the dropped database comes back');
unlike(log_since($offset), qr/terminated by signal|PANIC/, 'no crash around the drop');
set_databases('postgres');

# --- DROP EXTENSION under a running worker -------------------------------------------------------

# A slow sink keeps requests in flight while the extension goes away.
$sink->control(mode => 'slow', delay_ms => 300);
my $delivered = scalar $sink->requests('/postgres');
append('postgres', 30, 'doomed');
ok($sink->wait_for($delivered + 1, '/postgres', 10), 'the worker is delivering');
my ($worker) = worker_pids($node);
$offset = -s $node->logfile;
$t0 = time;
($rc, $out, $err) = $node->psql('postgres', 'DROP EXTENSION pg_ves');
$took = time - $t0;
is($rc, 0, 'DROP EXTENSION pg_ves succeeds while the worker delivers') or diag($err);
cmp_ok($took, '<', 10, sprintf('without waiting long for the worker (%.1f s)', $took));
$sink->clear('/');
my $gone = 0;
$t0 = time;
while (time - $t0 < 12)
{
	my @now = worker_pids($node);
	$gone++ unless @now == 1 && $now[0] == $worker;
	usleep(250_000);
}
is($gone, 0, 'the same worker process stays up for 12 s after the drop (no crash, no restart loop)');
my $log = log_since($offset);
unlike($log, qr/terminated by signal|PANIC|server process .* exited/, 'the server log shows no crash');
my $starts = () = $log =~ /pg_ves worker started/g;
is($starts, 0, 'and no worker restart');
is( sql(q{SELECT state || '|' || query FROM pg_stat_activity WHERE backend_type = 'pg_ves worker'}),
	'idle|pg_ves: waiting for CREATE EXTENSION pg_ves',
	'pg_stat_activity shows the worker idle, waiting for its extension');

# --- CREATE EXTENSION again ----------------------------------------------------------------

sql('CREATE EXTENSION pg_ves');
setup_database('postgres');
my @back = append('postgres', 3, 'back');
ok(wait_until(15, sub { arrived('postgres', @back) == 3 }), 'after CREATE EXTENSION delivery resumes');
is_deeply([ worker_pids($node) ], [$worker], 'with the same worker process');

# --- DROP EXTENSION under an idle worker ---------------------------------------------------

# Nothing is in flight or to claim: the worker's periodic steps (follow-ups,
# reconciliations, pulls, housekeeping) are what meet the missing objects.
ok(wait_until(15, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'the worker is idle');
$offset = -s $node->logfile;
sql('DROP EXTENSION pg_ves');
ok( wait_until(
		20,
		sub {
			sql(q{SELECT query FROM pg_stat_activity WHERE backend_type = 'pg_ves worker'}) eq
			  'pg_ves: waiting for CREATE EXTENSION pg_ves';
		}),
	'an idle worker notices the drop and waits for the extension');
sleep 6;
$log = log_since($offset);
my $said = () = $log =~ /extension pg_ves was dropped from this database; waiting for CREATE EXTENSION/g;
is($said, 1, 'the log says so once');
unlike($log, qr/pg_ves worker: .*(does not exist|failed)/, 'and shows no step failing for the missing objects');
is_deeply([ worker_pids($node) ], [$worker], 'the same worker process waits');

$node->stop;
my @crashes = grep { /terminated by signal/ } split /\n/, slurp_file($node->logfile);
is_deeply(\@crashes, [], 'no process terminated by a signal');

done_testing();
