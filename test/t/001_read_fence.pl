# The read fence against a real postmaster: ves.read_all never returns a
# position while a lower one may still commit, so a consumer that passes back
# the last position it received skips nothing, even with many concurrent
# writers committing out of order.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use PgVesTest;

my $node = new_node('read_fence');

my $tenant = "'00000000-0000-0000-0000-0000000000a1'";
my $store = "'00000000-0000-0000-0000-0000000000b1'";

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub append_sql
{
	my ($entity) = @_;
	return "SELECT position FROM ves.append($tenant, $store, 'Order', '$entity', 'order.created', '{}')";
}

# The positions one read_all call returns, in the order it returns them.
sub read_all
{
	my ($after) = @_;
	return join ',', split /\n/,
	  sql("SELECT position FROM ves.read_all($after, 1000)");
}

sub holders
{
	return join ';', split /\n/,
	  sql("SELECT pid || '|' || holds_from_position FROM ves.read_fence_holders ORDER BY pid");
}

# ---------------------------------------------------------------------------
# (a) Out-of-order commit: A takes position p and stays open, B takes p+1 and
# commits first.

my $p0 = sql(append_sql('first'));
is($p0, 1, 'first committed append gets position 1');

my $holder = $node->background_psql('postgres');
my $a_pid = $holder->query_safe('SELECT pg_backend_pid()');
$holder->query_safe('BEGIN');
my $p = $holder->query_safe(append_sql('early'));
is($p, $p0 + 1, 'open transaction A took the next position');

my $late = sql(append_sql('late'));
is($late, $p + 1, 'B took the position after A and committed');

is(sql("SELECT count(*) FROM ves.events WHERE position = $late"),
	1, "B's event is committed and visible to a plain SELECT");
is(read_all(0), "$p0", 'read_all(0) stops below the position A may still commit');
is(read_all($p0), '', 'a consumer at the last position it saw gets nothing yet');
is(sql('SELECT ves.read_fence()'), $p, 'the fence sits at A\'s position');
is(holders(), "$a_pid|$p", 'ves.read_fence_holders names A and its position');

$holder->query_safe('COMMIT');
is(read_all($p0), "$p,$late", 'after A commits the consumer gets p then p+1');
is(read_all(0), "$p0,$p,$late", 'read_all(0) returns all three in order');
is(holders(), '', 'no fence holders after the commit');
is(sql('SELECT ves.read_fence()'), $late + 1, 'the fence is one past the newest position');

# The same with A rolling back: its position becomes a permanent gap and must
# not stall readers once A has ended.
$holder->query_safe('BEGIN');
my $doomed = $holder->query_safe(append_sql('doomed'));
my $late2 = sql(append_sql('late2'));
is($late2, $doomed + 1, 'B committed the position after the one A holds');
is(read_all($late), '', 'nothing is returned while A is open');
$holder->query_safe('ROLLBACK');
is(read_all($late), "$late2", 'after A rolls back the consumer gets p+1 and skips the gap');
is(holders(), '', 'no fence holders after the rollback');

# A holder whose backend is terminated (FATAL, not a crash) releases the
# fence on exit.
$holder->query_safe('BEGIN');
my $orphan = $holder->query_safe(append_sql('orphan'));
my $late3 = sql(append_sql('late3'));
is(read_all($late2), '', 'the fence holds while the holder\'s backend lives');
is(sql("SELECT pg_terminate_backend($a_pid)"), 't', 'holder backend terminated');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) = 0 FROM ves.read_fence_holders'),
	'the terminated backend released the fence');
is(read_all($late2), "$late3", 'the consumer gets the committed event, not the orphaned one');
eval { $holder->quit };    # psql may already have noticed the lost connection

# ---------------------------------------------------------------------------
# (b) Stress: four pgbench clients append in transactions that sleep while
# holding their position; one in seven rolls back (decided by the position
# itself, so the expected set is exact). A consumer pages concurrently.

my $clients = 4;
my $per_client = 500;
my $total = $clients * $per_client;
my $start = sql('SELECT last_value FROM ves.position_seq');

my $script = PostgreSQL::Test::Utils::tempdir() . '/append.sql';
open my $fh, '>', $script or die "cannot write $script: $!";
print $fh <<'EOS';
\set entity random(1, 40)
BEGIN;
SELECT pg_sleep(random() * 0.002);
SELECT position AS pos FROM ves.append('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-0000000000b2', 'Sku', 'sku-' || :entity, 'stock.adjusted', jsonb_build_object('client', :client_id)) \gset
SELECT pg_sleep(random() * 0.01);
\if :pos % 7 = 0
ROLLBACK;
\else
COMMIT;
\endif
EOS
close $fh;

my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[
		'pgbench', '-n', '-c', $clients, '-j', 2, '-t', $per_client,
		'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$bench_out, '2>', \$bench_err);

my $consumer = $node->background_psql('postgres');
my $last = $start;
my @seen;
my $increasing = 1;
my $pages = 0;
my $held_back = 0;
my $deadline = time() + 120;

# Reads one page after $last, records it and moves $last to its end, exactly
# as a consumer would. Returns the number of events in the page.
my $read_page = sub {
	my $page = $consumer->query_safe(
		"SELECT position FROM ves.read_all($last, 100)");
	my @got = $page eq '' ? () : split /\n/, $page;
	for my $pos (@got)
	{
		$increasing = 0 if $pos <= $last;
		push @seen, $pos;
		$last = $pos;
	}
	$pages++;
	return scalar @got;
};

# BackgroundPsql notes every query and its result; thousands of consumer
# pages would bury the test's own output.
no warnings 'redefine';
local *PostgreSQL::Test::BackgroundPsql::note = sub { };
use warnings 'redefine';

my $t0 = time();
while ($bench->pumpable)
{
	$bench->pump_nb;
	$read_page->();
	# The statement snapshot precedes the fence, so true means an event that
	# had already committed was held back behind an open transaction.
	$held_back++
	  if $consumer->query_safe(
		"SELECT ves.read_fence() <= (SELECT coalesce(max(position), 0) FROM ves.events)"
	  ) eq 't';
	if (time() > $deadline)
	{
		$bench->kill_kill;
		BAIL_OUT('pgbench writers did not finish within 120 s');
	}
}
ok($bench->finish, 'pgbench writers exited cleanly') or diag($bench_err);
like($bench_out, qr/number of transactions actually processed: $total\/$total/,
	"pgbench ran all $total transactions");
note(sprintf('writers ran %.1f s; consumer read %d pages, saw the fence hold back committed events %d times',
		time() - $t0, $pages, $held_back));
my $seen_during = scalar @seen;

ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) = 0 FROM ves.read_fence_holders'),
	'no fence holders once the writers are done');
1 while $read_page->() > 0;

my @expected = grep { $_ % 7 != 0 } ($start + 1 .. $start + $total);
my $stored = join ',', split /\n/,
  sql("SELECT position FROM ves.events WHERE position > $start ORDER BY position");

is(sql('SELECT last_value FROM ves.position_seq'), $start + $total,
	'every transaction took exactly one position');
is($stored, join(',', @expected),
	'ves.events holds exactly the committed positions (one in seven rolled back)');
my %count;
$count{$_}++ for @seen;
my %is_stored = map { $_ => 1 } split /,/, $stored;
is_deeply([ grep { !$count{$_} } split /,/, $stored ],
	[], 'the consumer skipped no stored position');
is_deeply([ grep { !$is_stored{$_} } @seen ],
	[], 'the consumer saw no position that is not stored');
is_deeply([ grep { $count{$_} > 1 } sort { $a <=> $b } keys %count ],
	[], 'the consumer saw no position twice');
is(scalar @seen, scalar @expected, 'the consumer saw as many events as were committed');
ok($increasing, 'the consumer saw positions in strictly increasing order');
cmp_ok($seen_during, '>', 0, 'the consumer made progress while writers were running');
cmp_ok($held_back, '>', 0, 'the fence held back committed events during the run');
is(sql('SELECT ves.read_fence() = last_value + 1 FROM ves.position_seq'),
	't', 'the fence is one past the newest position: rolled-back positions do not stall it');

$consumer->quit;
$node->stop;

unlike(slurp_file($node->logfile), qr/terminated by signal/,
	'no backend was terminated by a signal');

done_testing();
