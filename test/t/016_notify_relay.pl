# NOTIFY ves_events through the sync worker. When a worker serves the
# database, appenders do not send NOTIFY themselves (it takes a cluster-wide
# lock held through the commit's WAL flush, which serialises them); the
# worker sends it for them shortly after their commit, one notification for
# many commits. Without a worker, appenders notify at commit as before, when a
# session of the database listens. A rolled-back append notifies nobody;
# ves.notify = off silences both paths.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c8';
my $store = '00000000-0000-0000-0000-0000000000d8';

my $node = new_node('notify_relay');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# Runs $work (a sub) while a session listens on ves_events; returns the pids
# that sent the notifications it received.
sub senders_during
{
	my ($work) = @_;
	my $h = IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr('postgres'),
		'-c', 'LISTEN ves_events', '-c', q{SELECT pg_sleep(3)}, '-c', q{SELECT 'listened'} ],
		'>', \my $out, '2>', \my $err);
	wait_until(10, sub { sql(q{SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)'}) > 0 })
	  or die "the listener did not start";
	$work->();
	$h->finish;
	die "listener failed: $err" unless $out =~ /listened/;
	return $out =~ /Asynchronous notification "ves_events" received from server process with PID (\d+)/g;
}

sub append_each
{
	my ($n) = @_;
	sql(join "\n", map { qq{SELECT ves.append('$tenant', '$store', 'Order', 'o-$_', 'order.created', '{}');} } 1 .. $n);
}

# Without a worker: the appender itself.
my $appender_pid;
my @senders = senders_during(sub { $appender_pid = sql(qq{SELECT pg_backend_pid() FROM
  (SELECT ves.append('$tenant', '$store', 'Order', 'solo', 'order.created', '{}')) a}) });
is_deeply(\@senders, [$appender_pid], 'without a worker the appending session notifies at commit');

ok(enable_worker($node), 'the sync worker runs');
my ($worker) = worker_pids($node);

@senders = senders_during(sub { append_each(50) });
cmp_ok(scalar(@senders), '>=', 1, 'with a worker, 50 commits are announced');
ok(!grep({ $_ != $worker } @senders), 'by the worker alone') or diag "senders: @senders, worker $worker";
cmp_ok(scalar(@senders), '<=', 50, 'at most once per commit');

@senders = senders_during(sub {
	sql(qq{BEGIN; SELECT ves.append('$tenant', '$store', 'Order', 'rolled-back', 'order.created', '{}'); ROLLBACK;});
});
is(scalar(@senders), 0, 'a rolled-back append announces nothing');

$node->append_conf('postgresql.conf', "ves.notify = off\n");
$node->reload;
@senders = senders_during(sub { append_each(5) });
is(scalar(@senders), 0, 'ves.notify = off: nothing is announced');
$node->append_conf('postgresql.conf', "ves.notify = on\n");
$node->reload;

# A stopped worker hands the job back to the appenders.
sql(q{SELECT ves.stop_worker('postgres')});
ok(wait_until(30, sub { !worker_pids($node) }), 'the worker stopped');
@senders = senders_during(sub { $appender_pid = sql(qq{SELECT pg_backend_pid() FROM
  (SELECT ves.append('$tenant', '$store', 'Order', 'after-stop', 'order.created', '{}')) a}) });
is_deeply(\@senders, [$appender_pid], 'after the worker stops the appender notifies again');

# Appenders decide at commit whether to notify: only when a session of the
# database has run LISTEN ves_events (pg_ves is preloaded, so every backend
# tells). A session that starts to listen while an appending transaction is
# still open hears of that transaction's commit.
my $app = $node->background_psql('postgres');
$appender_pid = $app->query_safe('SELECT pg_backend_pid()');
$app->query_safe('BEGIN');
$app->query_safe(qq{SELECT ves.append('$tenant', '$store', 'Order', 'open-before-listen', 'order.created', '{}')});
@senders = senders_during(sub { $app->query_safe('COMMIT') });
is_deeply(\@senders, [$appender_pid], 'a listener that came after the append hears of its commit');

# A rolled-back subtransaction takes its append's notification with it; the
# rest of the transaction still notifies.
@senders = senders_during(sub {
	$app->query_safe(qq{BEGIN; SAVEPOINT s; SELECT ves.append('$tenant', '$store', 'Order', 'in-savepoint', 'order.created', '{}'); ROLLBACK TO s; COMMIT;});
});
is(scalar(@senders), 0, 'an append rolled back to a savepoint announces nothing');
@senders = senders_during(sub {
	$app->query_safe(qq{BEGIN; SAVEPOINT s; SELECT ves.append('$tenant', '$store', 'Order', 'released', 'order.created', '{}'); RELEASE s; COMMIT;});
});
is_deeply(\@senders, [$appender_pid], 'an append in a released savepoint is announced at commit');
$app->quit;

$node->stop;
done_testing();
