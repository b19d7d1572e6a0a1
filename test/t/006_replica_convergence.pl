# Two replicas (two clusters) receive the same random changes in different
# orders. Under last_write_wins, with source priority on or off, they end in
# the same state, entity by entity. As a control, under accept_remote (which
# by definition depends on arrival order) they do not, so the comparison has
# teeth.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(shuffle);

use PgVesTest;

srand(20261122);
my $a = new_node('replica_a');
my $b = new_node('replica_b');
my $store = '00000000-0000-0000-0000-0000000000d7';
my @sources = qw(shopify amazon tiktok manual pos);
my @fields = qw(title price color on_hand);

my %policies = (
	lww_priority => '{"strategy": "last_write_wins", "review_window_ms": 0}',
	lww_latest => '{"strategy": "last_write_wins", "review_window_ms": 0, "source_priority": [], "external_sources_win": false}',
	accept_remote => '{"strategy": "accept_remote", "review_window_ms": 0}',
);

# One script per replica: every round is its own tenant.
sub rounds
{
	my ($policy, $count, $first) = @_;
	my ($sa, $sb, $reordered) = ('', '', 0);
	for my $r ($first .. $first + $count - 1)
	{
		my $tenant = sprintf('00000000-0000-0000-0000-%012x', $r);
		my @changes;
		for (1 .. 2 + int(rand(6)))
		{
			my %state;
			for my $f (@fields) { $state{$f} = int(rand(4)) if rand() < 0.6; }
			my $json = '{' . join(', ', map { qq{"$_": $state{$_}} } sort keys %state) . '}';
			push @changes, sprintf(
				"SELECT ves.upsert('%s', '%s', 'thing', 'e%d', '%s', NULL, '%s', observed_at => timestamptz '2026-01-01 00:00:00+00' + interval '%d seconds');\n",
				$tenant, $store, 1 + int(rand(2)), $json, $sources[int(rand(@sources))], int(rand(40)));
		}
		my @order = shuffle(0 .. $#changes);
		$reordered++ if join(',', @order) ne join(',', 0 .. $#changes);
		my $setup = "SELECT ves.set_conflict_policy('$tenant', '*', '$policy');\n";
		$sa .= $setup . join('', @changes);
		$sb .= $setup . join('', @changes[@order]);
	}
	$a->safe_psql('postgres', $sa);
	$b->safe_psql('postgres', $sb);
	return $reordered;
}

sub states
{
	my ($node, $first, $count) = @_;
	return $node->safe_psql('postgres', sprintf(
		q{SELECT tenant_id, entity_id, state FROM ves.entity_state
		  WHERE tenant_id BETWEEN '00000000-0000-0000-0000-%012x' AND '00000000-0000-0000-0000-%012x'
		  ORDER BY 1, 2}, $first, $first + $count - 1));
}

my $first = 1;
for my $name (qw(lww_priority lww_latest))
{
	my $reordered = rounds($policies{$name}, 150, $first);
	cmp_ok($reordered, '>', 100, "$name: most of 150 histories arrive in a different order");
	my ($sa, $sb) = (states($a, $first, 150), states($b, $first, 150));
	cmp_ok(scalar(split /\n/, $sa), '>=', 150, "$name: entities on replica a");
	is($sa, $sb, "$name: both replicas end in the same state");
	$first += 150;
}

rounds($policies{accept_remote}, 60, $first);
isnt(states($a, $first, 60), states($b, $first, 60), 'control: accept_remote depends on arrival order');

for my $node ($a, $b)
{
	is($node->safe_psql('postgres', q{SELECT count(*) FROM ves.verify_events()}), '0',
		$node->name . ': every event verifies (no failures listed)');
}

$a->stop;
$b->stop;
done_testing();
