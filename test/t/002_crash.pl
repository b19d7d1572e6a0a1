# The read fence across a backend crash and a clean restart. The fence lives
# in shared memory: a crash (kill -9 of a backend holding it) makes the
# postmaster reinitialise that memory, and both then and after a restart the
# fence must come back released, with its high-water mark rebuilt from
# ves.position_seq so that new positions are above every earlier one and
# readable, and no uncommitted event may survive.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('crash');
# Test clusters are created with restart_after_crash off; the behaviour under
# test is the postmaster's crash restart, so turn it back on.
$node->append_conf('postgresql.conf', 'restart_after_crash = on');
$node->reload;

my $tenant = "'00000000-0000-0000-0000-0000000000c1'";
my $store = "'00000000-0000-0000-0000-0000000000d1'";

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub append_sql
{
	my ($entity, $expected) = @_;
	$expected //= 'NULL';
	return "SELECT position FROM ves.append($tenant, $store, 'Order', '$entity', 'order.created', '{}', $expected)";
}

sub read_all
{
	my ($after) = @_;
	return join ',', split /\n/,
	  sql("SELECT position FROM ves.read_all($after, 1000)");
}

sub stored
{
	return join ',', split /\n/,
	  sql('SELECT position FROM ves.events ORDER BY position');
}

sub holders
{
	return join ';', split /\n/,
	  sql("SELECT pid || '|' || holds_from_position FROM ves.read_fence_holders ORDER BY pid");
}

# Opens a session that appends to $entity in a transaction it leaves open.
# Returns the session, its backend pid and the position it took.
sub open_holder
{
	my ($entity) = @_;
	my $session = $node->background_psql('postgres');
	my $pid = $session->query_safe('SELECT pg_backend_pid()');
	$session->query_safe('BEGIN');
	my $pos = $session->query_safe(append_sql($entity));
	return ($session, $pid, $pos);
}

# ---------------------------------------------------------------------------
# (a) kill -9 of a backend that holds the fence.

is( join(',', split /\n/, sql(
	"SELECT position FROM generate_series(1, 3) g,
	   LATERAL ves.append($tenant, $store, 'Order', 'o-' || g, 'order.created', '{}')")),
	'1,2,3', 'three committed events at positions 1..3');

my ($victim, $victim_pid, $in_flight) = open_holder('in-flight');
is($in_flight, 4, 'the victim holds position 4 in an open transaction');
my $late = sql(append_sql('late'));
is($late, 5, 'another session committed position 5 after it');
is(holders(), "$victim_pid|$in_flight", 'the victim holds the fence');
is(read_all(0), '1,2,3', 'readers stop below the victim\'s position');

my $log_offset = -s $node->logfile;
ok(kill('KILL', $victim_pid), "sent SIGKILL to backend $victim_pid");
# The postmaster must notice the crash before polling, or the poll could
# reach a backend that is about to be told to quit.
$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$log_offset);
ok($node->poll_query_until('postgres', 'SELECT true'),
	'the server accepts connections again after crash recovery');
eval { $victim->quit };    # its connection is gone; psql's exit code is moot

is(holders(), '', 'no fence holders after crash recovery');
is(stored(), '1,2,3,5', 'committed events survived, the uncommitted one is gone');
is(sql("SELECT count(*) FROM ves.streams WHERE entity_id = 'in-flight'"),
	0, 'the uncommitted append left no stream row');
is(sql('SELECT ves.read_fence() = last_value + 1 FROM ves.position_seq'),
	't', 'the fence is rebuilt one past the sequence\'s last value');
is(read_all(0), '1,2,3,5', 'read_all(0) returns every committed event');
is(read_all(3), '5', 'a consumer that had seen 3 resumes with 5');

my $after_crash = sql(append_sql('in-flight', 0));
cmp_ok($after_crash, '>', $late,
	'a new append (to the entity whose append was lost) gets a position above every earlier one');
note("first position after crash recovery: $after_crash (the sequence resumes from its last WAL-logged value)");
is(read_all($late), "$after_crash", 'and read_all returns it');
is(sql('SELECT ves.read_fence()'), $after_crash + 1, 'the fence moved past it');

# The reinitialised fence still holds for a new open transaction.
my ($holder, $holder_pid, $held) = open_holder('after-crash');
my $behind = sql(append_sql('behind'));
is(read_all($after_crash), '', 'a new open transaction holds the fence after recovery');
is(holders(), "$holder_pid|$held", 'and shows up as the holder');
$holder->query_safe('COMMIT');
is(read_all($after_crash), "$held,$behind", 'its commit releases both events in order');
$holder->quit;

# ---------------------------------------------------------------------------
# (b) A clean restart while a transaction holds the fence: the fast shutdown
# rolls it back.

my ($doomed, $doomed_pid, $lost) = open_holder('doomed');
my $last_before = sql(append_sql('before-restart'));
cmp_ok($last_before, '>', $lost, 'a commit after the open transaction\'s position');
my $committed_before = stored();
is(read_all($behind), '', 'the open transaction holds the fence before the restart');

$node->restart;
eval { $doomed->quit };

is(holders(), '', 'no fence holders after the restart');
is(stored(), $committed_before, 'the same committed events after the restart');
is(sql("SELECT count(*) FROM ves.events WHERE position = $lost"),
	0, 'the rolled-back event is gone');
is(sql('SELECT ves.read_fence() = last_value + 1 FROM ves.position_seq'),
	't', 'the fence is rebuilt one past the sequence\'s last value');
is(read_all($behind), "$last_before", 'the consumer resumes with the event committed before the restart');

my $after_restart = sql(append_sql('after-restart'));
cmp_ok($after_restart, '>', $last_before, 'a new append gets a position above every earlier one');
note("first position after the restart: $after_restart");
is(read_all($last_before), "$after_restart", 'and read_all returns it');
is(holders(), '', 'no fence holders at the end');

$node->stop;

# ---------------------------------------------------------------------------
# (c) The only process that died by a signal is the one killed on purpose.

my @signalled = grep { /terminated by signal/ } split /\n/,
  slurp_file($node->logfile);
is(scalar @signalled, 1, 'exactly one process was terminated by a signal');
like($signalled[0] // '', qr/\(PID $victim_pid\) was terminated by signal 9: Killed/,
	'and it is the backend killed with SIGKILL');

done_testing();
