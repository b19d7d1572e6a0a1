# The monitoring files in monitoring/ against a running cluster:
#  - Debian's prometheus-postgres-exporter, started on a free loopback port
#    with monitoring/postgres_exporter_queries.yaml and a pg_monitor role,
#    serves the pg_ves series (pg_ves_sync_*) with the counts
#    ves.sync_metrics reports;
#  - every series the Grafana dashboard (monitoring/grafana_dashboard.json)
#    queries is one ves.prometheus_metrics() emits.
use strict;
use warnings;

use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use PgVesTest;

my $repo = $ENV{PGVES_REPO} // die "PGVES_REPO must name the repository\n";
my $node = new_node('exporter');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# Known traffic without a worker: two rows to a closed port, one pass each,
# so two attempts and two transport failures.
sql(q{SELECT ves.create_destination('closed', 'http', 'http://127.0.0.1:9/x',
        '{"max_attempts": 5, "timeout_ms": 2000}')});
sql(q{SELECT count(*) FROM generate_series(1, 2) g,
        LATERAL ves.append('00000000-0000-0000-0000-000000005101', '00000000-0000-0000-0000-000000005102',
                           'inventory', 'sku-' || g, 'stock.set', '{}')});
sql(q{SELECT * FROM ves.push_events('closed')});
is(sql(q{SELECT attempts || ',' || failures || ',' || queue_depth FROM ves.sync_metrics() WHERE destination = 'closed'}),
	'2,2,2', 'two attempts, two failures, two rows queued');
sql(q{CREATE ROLE monitor LOGIN IN ROLE pg_monitor});

# --- the dashboard names only series the exposition emits ----------------------

my $prom = $node->safe_psql('postgres', 'SELECT ves.prometheus_metrics()');
my %emitted;
for my $line (split /\n/, $prom)
{
	next if $line =~ /^#/ || $line !~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)/;
	$emitted{$1} = 1;
}
ok($emitted{pgves_sync_latency_seconds_bucket}, 'the exposition has the latency buckets');

my $dashboard = decode_json(slurp_file("$repo/monitoring/grafana_dashboard.json"));
my @queries;
for my $panel (@{ $dashboard->{panels} })
{
	push @queries, map { $_->{expr} } @{ $panel->{targets} // [] };
}
for my $var (@{ $dashboard->{templating}{list} })
{
	push @queries, $var->{definition} if $var->{definition};
}
ok(@queries >= 7, 'the dashboard has queries (' . scalar(@queries) . ')');
my %named;
for my $q (@queries) { $named{$1} = 1 while $q =~ /\b(pgves_[a-z0-9_]+)/g; }
ok(keys %named >= 10, 'its queries name ' . scalar(keys %named) . ' pg_ves series');
is_deeply([ grep { !$emitted{$_} } sort keys %named ], [],
	'every series the dashboard queries is emitted by ves.prometheus_metrics()');
ok($named{pgves_sync_latency_seconds_bucket} && $named{pgves_outbox_queue_depth}
	  && $named{pgves_delivery_successes_total} && $named{pgves_conflicts_open},
	'it charts latency, queue depth, success rate and conflicts');

# --- prometheus-postgres-exporter with the pg_ves queries --------------------------

SKIP:
{
	my $exporter = '/usr/bin/prometheus-postgres-exporter';
	skip 'prometheus-postgres-exporter is not installed', 4 unless -x $exporter;
	my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
	  or die "no free port: $!";
	my $port = $probe->sockport;
	close $probe;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		$ENV{DATA_SOURCE_NAME} =
		  'host=' . $node->host . ' port=' . $node->port . ' user=monitor dbname=postgres sslmode=disable';
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', "$dir/exporter.log";
		open STDERR, '>&', \*STDOUT;
		{
			exec $exporter, "--web.listen-address=127.0.0.1:$port",
			  "--extend.query-path=$repo/monitoring/postgres_exporter_queries.yaml",
			  '--disable-default-metrics', '--disable-settings-metrics';
		}
		# Not die: that would run the parent's END blocks in this child.
		POSIX::_exit(127);
	}
	my $http = HTTP::Tiny->new(timeout => 10);
	my $body = '';
	my $deadline = time + 60;
	while (time < $deadline)
	{
		my $res = $http->get("http://127.0.0.1:$port/metrics");
		$body = $res->{content} if $res->{success};
		last if $body =~ /^pg_ves_sync_queue_depth/m;
		usleep(200_000);
	}
	like($body, qr/^pg_ves_sync_queue_depth\{[^}]*destination="closed"[^}]*\} 2$/m,
		'the exporter serves pg_ves_sync_queue_depth for the destination');
	like($body, qr/^pg_ves_sync_failures\{[^}]*destination="closed"[^}]*\} 2$/m,
		'and its failures in the last 5 minutes');
	like($body, qr/^pg_ves_sync_attempts\{[^}]*destination="\(total\)"[^}]*\} 2$/m,
		'and the total row');
	like($body, qr/^pg_ves_sync_inventory_sync_p95\{[^}]*destination="closed"[^}]*\} NaN$/m,
		'a percentile with no sample is NaN');
	kill 'TERM', $pid;
	waitpid($pid, 0);
	diag(slurp_file("$dir/exporter.log")) if !Test::More->builder->is_passing;
}

$node->stop;
done_testing();
