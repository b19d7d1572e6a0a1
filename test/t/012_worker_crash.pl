# At-least-once delivery across crashes: with thousands of outbox rows
# pending behind a slow destination, the sync worker is killed with SIGKILL
# mid-drain (the postmaster reinitialises and the launcher starts another),
# then the postmaster itself is killed mid-drain and the server started
# again. In the end every event has arrived, a repeat carries the same
# webhook-id and the same body, every outbox row is synced (rows claimed by
# a dead worker come back when their lease expires) and only SIGKILL ever
# terminated a process.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

my $node = new_node('worker_crash');
# Test clusters are created with restart_after_crash off; the behaviour
# under test is the postmaster's crash restart.
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'the sync worker runs');
sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')});
sql("SELECT ves.create_destination('crash', 'webhook', '" . $sink->url('/crash')
	  . q{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "backoff_base_ms": 100}')});

# Slow answers keep thousands of rows pending long enough to crash mid-way.
$sink->control(mode => 'slow', delay_ms => 40);

# 3,000 events over 300 entities, in batches of 500.
for my $b (0 .. 5)
{
	sql(qq{
	  SELECT count(*) FROM ves.append_batch((SELECT jsonb_agg(jsonb_build_object(
	    'tenant_id', '00000000-0000-0000-0000-0000000000c1', 'store_id', '00000000-0000-0000-0000-0000000000d1',
	    'entity_type', 'Sku', 'entity_id', 'sku-' || (g % 300), 'event_type', 'stock.set',
	    'payload', jsonb_build_object('qty', g, 'batch', $b)) ORDER BY g)
	    FROM generate_series($b * 500, $b * 500 + 499) g))});
}
is(sql('SELECT count(*) FROM ves.outbox'), 3000, '3,000 outbox rows');

# --- kill -9 of the worker -------------------------------------------------------

ok($sink->wait_for(400, '/crash', 60), 'the worker is draining');
my ($victim) = worker_pids($node);
my $at_kill = $sink->count;
cmp_ok($at_kill, '<', 2500, "the worker is killed mid-drain ($at_kill requests so far)");
my $log_offset = -s $node->logfile;
ok(kill('KILL', $victim), "SIGKILL to the worker (pid $victim)");
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
ok($node->poll_query_until('postgres', 'SELECT true'), 'the server accepts connections after crash recovery');
ok(wait_until(60, sub { my ($p) = worker_pids($node); $p && $p != $victim }),
	'the launcher starts a new worker');
ok($sink->wait_for($at_kill + 600, '/crash', 60), 'the new worker goes on draining');

# --- kill -9 of the postmaster -----------------------------------------------------

my $open = sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'});
cmp_ok($open, '>', 300, "the postmaster is killed mid-drain ($open rows not yet synced)");
my @children = keys %{ children_of(postmaster_pid($node)) };
$node->kill9;
# Children notice the postmaster's death and exit; until the last one has
# detached from shared memory a new postmaster would refuse to start.
ok(wait_until(60, sub { !grep { kill 0, $_ } @children }),
	'the postmaster\'s ' . scalar(@children) . ' children exit after it was killed');
$node->start;
ok(wait_until(60, sub { worker_pids($node) }), 'the server starts again, with a worker');

# --- everything arrives ------------------------------------------------------------

ok( wait_until(150, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'every outbox row ends synced (leases of the dead workers expired and were reclaimed)');
is(sql(q{SELECT syncing || '|' || pending || '|' || failed || '|' || dead || '|' || synced FROM ves.get_sync_status()}),
	'0|0|0|0|3000', 'get_sync_status: 3,000 synced, none syncing, pending, failed or dead');
is(sql(q{SELECT count(*) FROM ves.outbox WHERE lease_until IS NOT NULL}), 0, 'no row left under a lease');
is(sql(q{SELECT count(*) FROM ves.outbox}), 3000, 'still exactly one outbox row per event');

my %first;    # webhook-id -> the first request carrying it
my ($repeats, @differ) = (0);
for my $r ($sink->requests('/crash'))
{
	my $id = $r->{headers}{'webhook-id'};
	if (my $f = $first{$id})
	{
		$repeats++;
		push @differ, $id if $f->{body} ne $r->{body};
	}
	else
	{
		$first{$id} = $r;
	}
}
my @events = split /\n/, sql('SELECT event_id FROM ves.events ORDER BY event_id');
is_deeply([ sort keys %first ], \@events, 'every event arrived at least once, and nothing else did');
note("$repeats requests repeated an event already received");
is_deeply(\@differ, [], 'every repeat carries the same webhook-id and the same body');

# Per entity, the first arrival of each version comes after the first
# arrival of the previous one: the next event of an entity is only sent
# once the previous one was answered.
is_deeply([ entity_order_violations($node, values %first) ], [], 'per entity, events first arrived in entity_version order');

$node->stop;
my @signalled = grep { /terminated by signal/ } split /\n/, slurp_file($node->logfile);
ok(scalar(grep { /\(PID $victim\) was terminated by signal 9: Killed/ } @signalled), 'the log shows the worker killed by SIGKILL');
is_deeply([ grep { !/signal 9: Killed/ } @signalled ], [], 'no process was terminated by any other signal');

done_testing();
