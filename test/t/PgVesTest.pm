# Shared by the pg_ves TAP tests: a started cluster with pg_ves preloaded
# (settings from $ENV{PGVES_TEST_CONF}, as scripts/test.sh passes them) and
# the extension created in the "postgres" database; the sync worker switched
# on; the mock HTTP destination (test/mock/sink.py) started and queried.
package PgVesTest;

use strict;
use warnings;

use Exporter 'import';
use File::Spec;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(new_node enable_worker worker_pids wait_until start_sink postmaster_pid children_of
  append_orders delivery_waits check_delivery_waits entity_order_violations start_sequencer start_platform);

# Cluster::init runs pg_regress --config-auth. scripts/test.sh sets
# PG_REGRESS; a hand-run prove may not, so find it next to PGXS.
if (!$ENV{PG_REGRESS})
{
	my $pgxs = `pg_config --pgxs`;
	chomp $pgxs;
	($ENV{PG_REGRESS} = $pgxs) =~
	  s{/src/makefiles/pgxs\.mk$}{/src/test/regress/pg_regress};
}

# new_node($name, %init_params): %init_params go to Cluster::init (for
# example allows_streaming => 1).
sub new_node
{
	my ($name, %init_params) = @_;
	my $conf = $ENV{PGVES_TEST_CONF}
	  or die "PGVES_TEST_CONF must name the pg_ves test settings file\n";

	# init() listens on a Unix socket only (no TCP) on this platform.
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init_params);
	$node->append_conf('postgresql.conf', slurp_file($conf));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_ves');
	return $node;
}

# Calls $check every 50 ms until it returns true or $seconds have passed;
# returns whether it did.
sub wait_until
{
	my ($seconds, $check) = @_;
	my $deadline = time + $seconds;
	while (1)
	{
		return 1 if $check->();
		return 0 if time > $deadline;
		usleep(50_000);
	}
}

# The pids of the running sync workers of $dbname (default postgres), from
# pg_stat_activity, as a sorted list.
sub worker_pids
{
	my ($node, $dbname) = @_;
	$dbname //= 'postgres';
	my $out = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_ves worker' AND datname = '$dbname' ORDER BY pid"
	);
	return grep { length } split /\n/, $out;
}

# Lists $dbnames in ves.databases (postgresql.conf, then a reload) and waits
# up to $seconds for a worker in each. Returns whether they all started.
sub enable_worker
{
	my ($node, $dbnames, $seconds) = @_;
	$dbnames //= 'postgres';
	$node->append_conf('postgresql.conf', "ves.databases = '$dbnames'\n");
	$node->reload;
	my @dbs = map { s/^\s+|\s+$//gr } split /,/, $dbnames;
	return wait_until($seconds // 30,
		sub { !grep { !worker_pids($node, $_) } @dbs });
}

# The running postmaster's pid, from postmaster.pid.
sub postmaster_pid
{
	my ($node) = @_;
	my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	return $pid;
}

# The processes whose parent is $pid, from /proc: a map pid -> process
# title (a server process's title names it, e.g. "postgres: node: pg_ves
# launcher").
sub children_of
{
	my ($pid) = @_;
	my %kids;
	for my $stat (glob '/proc/[0-9]*/stat')
	{
		open my $fh, '<', $stat or next;
		my $line = <$fh> // next;
		next unless $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $pid;
		my $kid = $1;
		open my $cmd, '<', "/proc/$kid/cmdline" or next;
		local $/;
		$kids{$kid} = (<$cmd> // '') =~ s/\0/ /gr;
	}
	return \%kids;
}

sub start_sink { return PgVesTest::Sink->new(@_); }

# Starts test/mock/sequencer.py (the mock VES sequencer) with @args (e.g.
# '--api-key', 'ss_k'); its control API through ->call(method, path, body).
sub start_sequencer { return PgVesTest::Sink->new_mock('sequencer.py', @_); }

# Starts test/mock/platforms.py serving one platform (shopify, tiktok,
# amazon or meta) with @args; its control API through ->call(method, path, body).
sub start_platform
{
	my ($platform, @args) = @_;
	return PgVesTest::Sink->new_mock('platforms.py', '--platforms', $platform, @args);
}

# Appends $n order.created events for entities "$prefix-1" .. "$prefix-$n" of
# ($tenant, $store), running the statement with $run (a test's own way to
# run SQL); returns their event ids in order.
sub append_orders
{
	my ($run, $tenant, $store, $n, $prefix) = @_;
	return split /\n/, $run->(
		"SELECT event_id FROM generate_series(1, $n) g,
		   LATERAL ves.append('$tenant', '$store', 'Order', '$prefix-' || g, 'order.created', '{}')");
}

# Appends $n order events of $tenant, one every 0.1 s whatever the
# deliveries do, for a webhook destination served by $sink at /hook, and
# returns each one's wait: from the start of its append to the sink's
# receipt of it (after waiting up to 30 s for them all; a missing one has
# none). $run runs SQL as append_orders' does.
sub delivery_waits
{
	my ($run, $sink, $tenant, $store, $n, $prefix) = @_;
	my $delivered = scalar($sink->requests('/hook'));
	my %started;
	for my $i (1 .. $n)
	{
		my $start = time();
		my ($id) = append_orders($run, $tenant, $store, 1, "$prefix-$i");
		$started{$id} = $start;
		usleep(100_000);
	}
	$sink->wait_for($delivered + $n, '/hook', 30);
	return map { $_->{time} - $started{ $_->{headers}{'webhook-id'} } }
	  grep { exists $started{ $_->{headers}{'webhook-id'} // '' } } $sink->requests('/hook');
}

# The checks of delivery_waits' @$waits: $n arrived, each once; at most
# $max_late took over 0.3 s; with $limit, the slowest took less. $why says
# what the deliveries must not wait for.
sub check_delivery_waits
{
	my ($waits, $n, $max_late, $limit, $why) = @_;
	Test::More::is(scalar(@$waits), $n, "every delivery made meanwhile arrives, each once");
	my $late = grep { $_ > 0.3 } @$waits;
	Test::More::cmp_ok($late, '<=', $max_late,
		"no delivery waits for $why (at most $max_late of $n took over 0.3 s)")
	  or Test::More::diag(sprintf('waits (s): %s', join ' ', map { sprintf '%.3f', $_ } @$waits));
	return unless defined $limit;
	my ($slowest) = sort { $b <=> $a } @$waits;
	Test::More::cmp_ok($slowest // 0, '<', $limit, sprintf('the slowest took %.3f s', $slowest // 0));
}

# The arrivals (sink requests, one per event, with their sequence numbers)
# that broke per-entity order: "entity:version" for each request whose event
# was not the next version of its entity. Empty when order was kept.
sub entity_order_violations
{
	my ($node, @requests) = @_;
	my %version = map { split /\|/ } split /\n/,
	  $node->safe_psql('postgres', q{SELECT event_id || '|' || entity_id || ':' || entity_version FROM ves.events});
	my (%last, @out_of_order);
	for my $r (sort { $a->{seq} <=> $b->{seq} } @requests)
	{
		my ($entity, $v) = split /:/, $version{ $r->{headers}{'webhook-id'} };
		push @out_of_order, "$entity:$v" if ($last{$entity} // 0) != $v - 1;
		$last{$entity} = $v;
	}
	return @out_of_order;
}

package PgVesTest::Sink;

use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my @running;

# The interpreter must be runnable by the cluster user, which may not see
# per-user installs (pyenv shims under /root) that come first in PATH.
sub python
{
	return $ENV{PGVES_PYTHON} if $ENV{PGVES_PYTHON};
	for my $dir (split /:/, $ENV{PATH} // '', '/usr/bin')
	{
		my $p = "$dir/python3";
		next unless -x $p;
		return $p if system("$p -c 'import asyncio' >/dev/null 2>&1") == 0;
	}
	die "no runnable python3 for test/mock/sink.py\n";
}

# Starts test/mock/sink.py on a free port and waits until it listens.
sub new { my ($class) = @_; return $class->new_mock('sink.py'); }

# Starts test/mock/$name with @args on a free port and waits until it listens.
sub new_mock
{
	my ($class, $name, @args) = @_;
	my $repo = $ENV{PGVES_REPO} // File::Spec->rel2abs('../..', __FILE__ =~ s{[^/]*$}{}r);
	my $script = "$repo/test/mock/$name";
	die "no mock at $script\n" unless -f $script;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $port_file = "$dir/sink.port";
	my $log = "$dir/sink.jsonl";
	my $python = python();
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDIN, '<', '/dev/null';
		# platforms.py logs one file per platform into a directory.
		my @log = $name eq 'platforms.py' ? ('--log-dir', $dir) : ('--log', $log);
		{ exec $python, $script, '--port', '0', '--port-file', $port_file, @log, '--quiet', @args; }
		# Not die: that would run the parent's END blocks in this child.
		print STDERR "exec $python: $!\n";
		POSIX::_exit(127);
	}
	my $self = bless {
		pid => $pid,
		log => $log,
		http => HTTP::Tiny->new(timeout => 30, keep_alive => 1),
		json => JSON::PP->new->utf8->canonical,
		seen => [],
		last_seq => 0,
	}, $class;
	push @running, $self;
	my $deadline = time + 30;
	until (-s $port_file)
	{
		die "the sink did not start\n" if time > $deadline || waitpid($pid, 1) == $pid;
		usleep(20_000);
	}
	chomp(my $port = slurp_file($port_file));
	$self->{port} = $port;
	return $self;
}

sub port { return $_[0]{port}; }
sub call { my ($self, @request) = @_; return $self->_call(@request); }
sub url { my ($self, $path) = @_; return "http://127.0.0.1:$self->{port}$path"; }

sub _call
{
	my ($self, $method, $path, $body) = @_;
	my $res = $self->{http}->request($method, $self->url($path),
		defined $body
		? { content => $self->{json}->encode($body),
			headers => { 'content-type' => 'application/json' } }
		: {});
	die "sink $method $path: $res->{status} $res->{content}\n" unless $res->{success};
	return $self->{json}->decode($res->{content});
}

# POST /_control: {mode, status, retry_after, delay_ms, times, path}.
sub control { my ($self, %rule) = @_; return $self->_call('POST', '/_control', \%rule); }
sub clear { my ($self, $path) = @_; return $self->_call('POST', '/_control', { clear => JSON::PP::true, path => $path }); }

sub reset
{
	my ($self) = @_;
	$self->_call('POST', '/_reset');
	$self->{seen} = [];
	$self->{last_seq} = 0;
}

# Requests received since start or the last reset (all paths).
sub count { return $_[0]->_call('GET', '/_requests/count')->{count}; }

# Every request received (the sink's records: seq, time, method, path,
# headers with lowercase names, body), oldest first, optionally only those whose path
# starts with $prefix; fetched incrementally.
sub requests
{
	my ($self, $prefix) = @_;
	my $got = $self->_call('GET', "/_requests?after=$self->{last_seq}");
	for my $r (@{ $got->{requests} })
	{
		# Bodies as the bytes that were sent (the sink decoded them as UTF-8),
		# comparable with psql's output and fit for signature checks.
		utf8::encode($r->{body});
		push @{ $self->{seen} }, $r;
		$self->{last_seq} = $r->{seq};
	}
	return @{ $self->{seen} } unless defined $prefix;
	return grep { index($_->{path}, $prefix) == 0 } @{ $self->{seen} };
}

# Waits up to $seconds until at least $n requests under $prefix arrived.
# How many of the events @ids arrived at $path (by webhook-id).
sub arrived
{
	my ($self, $path, @ids) = @_;
	my %at = map { ($_->{headers}{'webhook-id'} // '') => 1 } $self->requests($path);
	return scalar grep { $at{$_} } @ids;
}

sub wait_for
{
	my ($self, $n, $prefix, $seconds) = @_;
	return PgVesTest::wait_until($seconds // 30,
		sub { scalar($self->requests($prefix)) >= $n });
}

sub stop
{
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
}

END
{
	my $status = $?;
	$_->stop for @running;
	$? = $status;
}

1;
