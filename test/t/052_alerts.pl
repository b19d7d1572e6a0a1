# The sync worker evaluates the alert rules by itself: a destination that
# refuses a row (HTTP 400, so the row goes dead) fires dead_rows and
# sync_failure, a listener on ves_alerts receives the firing as JSON, and
# acknowledging the dead row resolves dead_rows (announced again). With the
# worker running, worker_not_running does not fire.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('alerts');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'a sync worker runs');

sql("SELECT ves.create_destination('refuser', 'http', '" . $sink->url('/refuser') . "', '{}')");
$sink->control(path => '/refuser', mode => 'status', status => 400);

# The listener waits while the row is refused and the worker evaluates.
sql(q{SELECT count(*) FROM ves.append('00000000-0000-0000-0000-000000005201', '00000000-0000-0000-0000-000000005202',
        'inventory', 'sku-1', 'stock.set', '{}')});
my ($rc, $out, $err) = $node->psql('postgres', q{LISTEN ves_alerts;
	DO $$ BEGIN
	  FOR i IN 1 .. 900 LOOP
	    EXIT WHEN EXISTS (SELECT FROM ves.alerts WHERE rule = 'dead_rows' AND destination = 'refuser' AND status = 'firing');
	    PERFORM pg_sleep(0.1);
	  END LOOP;
	END $$;
	SELECT 1;});
my @payloads = map { decode_json($_) } $out =~ /Asynchronous notification "ves_alerts" with payload "(.*?)" received/g;
my ($dead) = grep { $_->{rule} eq 'dead_rows' } @payloads;
ok($dead, 'a listener on ves_alerts hears dead_rows fire') or diag("stdout: $out\nstderr: $err");
is($dead->{destination} // '', 'refuser', 'for the refusing destination');
is($dead->{status} // '', 'firing', 'as firing');
is($dead->{value} // '', 1, 'with the value that broke the rule (one dead row)');
is(sql(q{SELECT count(*) FROM ves.alerts WHERE rule = 'sync_failure' AND destination = 'refuser' AND status = 'firing'}),
	1, 'sync_failure fires too (success rate 0)');
is(sql(q{SELECT count(*) FROM ves.alerts WHERE rule = 'worker_not_running'}), 0,
	'worker_not_running does not fire while the worker runs');

# Acknowledging the dead row resolves dead_rows at the next evaluation.
sql(q{SELECT ves.acknowledge_events(ARRAY(SELECT id FROM ves.outbox WHERE status = 'dead'))});
ok( wait_until(90,
		sub { sql(q{SELECT count(*) FROM ves.alerts WHERE rule = 'dead_rows' AND status = 'resolved'}) == 1 }),
	'the worker resolves dead_rows once the dead row is acknowledged');
is(sql(q{SELECT count(*) FROM ves.alerts WHERE rule = 'dead_rows' AND status <> 'resolved'}), 0,
	'and no dead_rows alert is open');

my $log = slurp_file($node->logfile);
unlike($log, qr/cannot evaluate the alert rules|terminated by signal/, 'no evaluation error and no crash in the log');

$node->stop;
done_testing();
