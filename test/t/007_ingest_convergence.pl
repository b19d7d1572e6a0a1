# Two pg_ves nodes serve the same store under the same last_write_wins
# policy. Both make random concurrent changes (upserts, stock counts,
# adjustments, reservations, orders); then every event is exchanged both ways
# (ves.export_event on one, ves.ingest_event + ves._apply_ingested on the
# other) in random-sized batches, the two directions interleaved at random,
# each node's own events in their order (as a sequencer delivers them), round
# after round until no node has anything new. Both end in the same entity
# state, inventory, reservations and orders, with the same conflicts
# recorded; the exchange stops; every event verifies. As a control, a tenant
# whose events are exchanged but not applied does not converge.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(shuffle);

use PgVesTest;

srand($ENV{PGVES_SEED} // 20261130);
my %node = (a => new_node('apply_a'), b => new_node('apply_b'));
my $store = '00000000-0000-0000-0000-0000000007d7';
my $pair = '00000000-0000-0000-0000-000000000701';    # one change per node per entity
my $many = '00000000-0000-0000-0000-000000000702';    # several changes per node per entity
my $ctrl = '00000000-0000-0000-0000-000000000703';    # exchanged, never applied
my @tenants = ($pair, $many, $ctrl);
my @sources = qw(shopify amazon manual pos);
my @fields = qw(title price color size);
my $policy = '{"strategy": "last_write_wins", "review_window_ms": 0}';

# Ingest and apply a batch in order; returns how many events were new here.
my $pull_fn = q{
CREATE FUNCTION public.pull_batch(envelopes jsonb, apply boolean) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  e jsonb;
  r ves.ingest_result;
  n int := 0;
BEGIN
  FOR e IN SELECT x FROM jsonb_array_elements(envelopes) x LOOP
    r := ves.ingest_event(e);
    IF NOT r.duplicate THEN n := n + 1; END IF;
    IF apply THEN PERFORM ves._apply_ingested(r.event_id); END IF;
  END LOOP;
  RETURN n;
END $$;
};

for my $n (values %node)
{
	$n->safe_psql('postgres',
		$pull_fn . join('', map { "SELECT ves.set_conflict_policy('$_', '*', '$policy');\n" } @tenants));
}

sub state_json
{
	my %state;
	for my $f (@fields) { $state{$f} = int(rand(4)) if rand() < 0.7; }
	return '{' . join(', ', map { qq{"$_": $state{$_}} } sort keys %state) . '}';
}

sub upsert
{
	my ($tenant, $entity) = @_;
	return sprintf(
		"SELECT ves.upsert('%s', '%s', 'thing', '%s', '%s', NULL, '%s', observed_at => timestamptz '2026-01-01 00:00:00+00' + interval '%d seconds');\n",
		$tenant, $store, $entity, state_json(), $sources[int(rand(@sources))], int(rand(60)));
}

# Each node's own changes, made before it hears of the other's.
my %script;
for my $side (qw(a b))
{
	my $sql = '';
	for my $tenant ($pair, $ctrl)
	{
		$sql .= upsert($tenant, "e$_") for 1 .. 12;
	}
	for my $i (1 .. 30) { $sql .= upsert($many, 'm' . (1 + int(rand(6)))); }
	# Stock: counts, adjustments, reservations of a few units of ample stock,
	# some of them committed or released.
	for my $tenant ($pair, $ctrl)
	{
		for my $sku (qw(s1 s2 s3))
		{
			$sql .= "SELECT ves.set_stock('$tenant', '$store', '$sku', " . (50 + int(rand(50))) . ");\n"
			  if rand() < 0.6;
			for my $k (1 .. 4)
			{
				my $r = rand();
				if ($r < 0.4)
				{
					$sql .= "SELECT ves.adjust_stock('$tenant', '$store', '$sku', " . (1 + int(rand(9))) . ");\n";
				}
				elsif ($r < 0.6)
				{
					$sql .= "SELECT ves.adjust_stock('$tenant', '$store', '$sku', 200);\n"
					  . "SELECT ves.adjust_stock('$tenant', '$store', '$sku', -" . (1 + int(rand(5))) . ");\n";
				}
				else
				{
					my $rid = "$side-$sku-$k";
					$sql .= "SELECT ves.adjust_stock('$tenant', '$store', '$sku', 10);\n"
					  . "SELECT ves.reserve_stock('$tenant', '$store', '$sku', " . (1 + int(rand(2))) . ", '$rid');\n";
					my $close = rand();
					$sql .= "SELECT ves.commit_reservation('$tenant', '$rid');\n" if $close < 0.3;
					$sql .= "SELECT ves.release_stock('$tenant', '$rid');\n" if $close >= 0.3 && $close < 0.5;
				}
			}
		}
		# Orders: each node's own, through part of their life.
		for my $o (1 .. 3)
		{
			my $id = "$side-o$o";
			my @steps = (
				[ 'order.created', qq({"total": $o}) ],
				[ 'payment.authorized', '{}' ],
				[ 'payment.captured', '{}' ],
				[ 'order.shipped', qq({"tracking_number": "1Z$side$o"}) ],
				[ 'order.delivered', '{}' ]);
			for my $s (@steps[ 0 .. int(rand(@steps)) ])
			{
				$sql .= "SELECT ves.record_order_event('$tenant', '$store', '$id', '$s->[0]', '$s->[1]');\n";
			}
		}
	}
	$script{$side} = $sql;
}
$node{a}->safe_psql('postgres', $script{a});
$node{b}->safe_psql('postgres', $script{b});

# Each node knows the other's agent key, as a sequencer's peers do.
for my $side (qw(a b))
{
	my $other = $side eq 'a' ? 'b' : 'a';
	my $keys = $node{$side}->safe_psql('postgres',
		q{SELECT string_agg(format('SELECT ves.register_agent_key(%L, %L, %s, %L);', tenant_id, agent_id, key_id, public_key), E'\n')
		  FROM ves.agent_keys WHERE local});
	$node{$other}->safe_psql('postgres', $keys);
}

# The exchange: what each node has past the other's cursor, in batches.
my %cursor = (ab => 0, ba => 0);
my ($rounds, $quiet) = (0, 0);
while ($rounds < 8)
{
	$rounds++;
	my $new = 0;
	for my $dir (shuffle(qw(ab ba)))
	{
		my ($from, $to) = map { $node{$_} } split //, $dir;
		for my $apply (1, 0)
		{
			my $tenant_filter = $apply ? "tenant_id <> '$ctrl'" : "tenant_id = '$ctrl'";
			my @env = split /\n/, $from->safe_psql('postgres', qq{
				SELECT ves.export_event(event_id)::text FROM ves.events
				WHERE position > $cursor{$dir} AND $tenant_filter ORDER BY position});
			while (@env)
			{
				my @batch = splice(@env, 0, 1 + int(rand(15)));
				my $json = '[' . join(',', @batch) . ']';
				$json =~ s/'/''/g;
				$new += $to->safe_psql('postgres',
					"SELECT public.pull_batch('$json'::jsonb, " . ($apply ? 'true' : 'false') . ')');
			}
		}
		$cursor{$dir} = $from->safe_psql('postgres', 'SELECT coalesce(max(position), 0) FROM ves.events');
	}
	if ($new == 0) { $quiet = 1; last; }
}
ok($quiet, "the exchange stops: a round with nothing new after $rounds rounds");
cmp_ok($rounds, '<=', 5, 'it takes a few rounds, not the bound');

sub rows
{
	my ($side, $sql) = @_;
	return $node{$side}->safe_psql('postgres', $sql);
}

my %queries = (
	'entity state' => q{SELECT tenant_id, entity_type, entity_id, state, deleted FROM ves.entity_state
		WHERE tenant_id = '%s' ORDER BY 1, 2, 3},
	# A field absent from the state whose stamp is the floor reads the same
	# as one without a stamp (it takes the floor).
	'field stamps' => q{SELECT entity_id, field_stamps -> 'floor',
		(SELECT jsonb_object_agg(f.key, f.value) FROM jsonb_each(field_stamps -> 'fields') f
		 WHERE f.value <> coalesce(field_stamps -> 'floor', 'null') OR state ? f.key)
		FROM ves.entity_state WHERE tenant_id = '%s' ORDER BY 1},
	inventory => q{SELECT sku, location, on_hand, reserved FROM ves.inventory WHERE tenant_id = '%s' ORDER BY 1, 2},
	reservations => q{SELECT reservation_id, sku, quantity, status FROM ves.reservations WHERE tenant_id = '%s' ORDER BY 1},
	orders => q{SELECT order_id, status, payment_status, return_status, tracking_number, data FROM ves.orders
		WHERE tenant_id = '%s' ORDER BY 1},
	conflicts => q{SELECT entity_type, entity_id, conflict_type, rule, status, fields, remote_source,
		remote_observed_at, remote_state FROM ves.conflicts WHERE tenant_id = '%s' ORDER BY 1, 2, 8, remote_state::text, fields},
);

for my $tenant ($pair, $many)
{
	my $label = $tenant eq $pair ? 'pairs' : 'many';
	for my $what (sort keys %queries)
	{
		next if $tenant eq $many && $what =~ /inventory|reservations|orders/;    # no stock or orders there
		my $q = sprintf($queries{$what}, $tenant);
		my ($ra, $rb) = (rows('a', $q), rows('b', $q));
		# Known limit (README "Applying events from other nodes"): a change
		# that repeats the values with a newer stamp changes nothing on its
		# own node and is no event, so its newer stamps stay there. (Its
		# conflicts, like every conflict record, travel as events.)
		local $TODO = 'a change that repeats the values with a newer stamp is no event and does not travel'
		  if $tenant eq $many && $what eq 'field stamps';
		is($ra, $rb, "$label: $what identical on both nodes");
	}
}
cmp_ok(rows('a', "SELECT count(*) FROM ves.entity_state WHERE tenant_id = '$pair'"), '==', 12,
	'pairs: every entity is there');
cmp_ok(rows('a', "SELECT count(*) FROM ves.conflicts WHERE tenant_id = '$pair'"), '>', 3,
	'pairs: concurrent changes were recorded as conflicts');
cmp_ok(rows('a', "SELECT count(*) FROM ves.orders WHERE tenant_id = '$pair'"), '==', 6,
	'pairs: both nodes\' orders are on both');
cmp_ok(rows('a', "SELECT count(*) FROM ves.reservations WHERE tenant_id = '$pair'"), '>', 0,
	'pairs: reservations travelled');
is(rows('a', "SELECT count(*) FROM ves.conflicts WHERE tenant_id = '$pair' AND status = 'open'"), '0',
	'pairs: nothing waits for a person under last_write_wins with ample stock');

is(rows('a', 'SELECT count(*), md5(string_agg(event_id::text, \',\' ORDER BY event_id)) FROM ves.events'),
	rows('b', 'SELECT count(*), md5(string_agg(event_id::text, \',\' ORDER BY event_id)) FROM ves.events'),
	'both nodes hold the same events');
cmp_ok(rows('a', "SELECT count(*) FROM ves.events WHERE payload ? 'applied_from'"), '>', 0,
	'some changes were restated (the rules decided a merge or a local win) and still the exchange stopped');
for my $side (qw(a b))
{
	is(rows($side, qq{SELECT count(*) FROM ves.entity_state s
		WHERE s.tenant_id <> '$ctrl' AND s.version <> ves._stream_version(s.tenant_id, s.entity_type, s.entity_id)}),
		'0', "$side: every entity's version is its stream's latest");
}

# Control: the same kind of history, exchanged but never applied.
for my $what ('entity state', 'inventory', 'orders')
{
	my $q = sprintf($queries{$what}, $ctrl);
	isnt(rows('a', $q), rows('b', $q), "control: without applying, $what differs");
}

for my $side (qw(a b))
{
	is(rows($side, q{SELECT count(*) FROM ves.verify_events()}), '0', "$side: every event verifies");
	is(rows($side, qq{SELECT count(*) FROM ves.events e WHERE e.source = 'ves' AND e.tenant_id <> '$ctrl'
		AND NOT EXISTS (SELECT 1 FROM ves.applied_events a WHERE a.event_id = e.event_id)}), '0',
		"$side: every event from the other node was applied or looked at");
}

$node{a}->stop;
$node{b}->stop;
done_testing();
