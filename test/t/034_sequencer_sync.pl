# VES sync end to end, three clusters: stores A and B serve the same store
# (tenant, store), each with its own agent; Q is a pg_ves database acting as
# their sequencer. Each store pushes its events to Q and pulls the stream
# back from it (one ves_postgres destination with "pull": true). Both edit
# the same products and stock at the same time; at quiescence both hold the
# same events, entity state, inventory and conflicts. An event forged on Q
# is refused and alerted on both stores and the stream waits for an
# operator; a hole in Q's stream stops the pulls until it is filled; kill -9
# of each node in turn, mid-sync, loses nothing and applies nothing twice.
# The same two stores then sync through the mock StateSet sequencer.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

srand($ENV{PGVES_SEED} // 20261130);
my $json = JSON::PP->new->utf8->canonical;
my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';

my $q = new_node('seq_q');
my $a = new_node('store_a');
my $b = new_node('store_b');
ok(enable_worker($_), $_->name . ': a sync worker runs') for ($q, $a, $b);
sub on { my ($node, $sql) = @_; return $node->safe_psql('postgres', $sql); }

# Keys: each store's agent is registered on Q and on the other store.
my %agent;
for my $node ($a, $b)
{
	my ($agent, $key, $public) = split /\|/,
	  on($node, "SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$store')");
	$agent{ $node->name } = [ $agent, $key, $public ];
}
for my $node ($q, $a, $b)
{
	for my $owner ($a, $b)
	{
		next if $owner == $node;
		my ($agent, $key, $public) = @{ $agent{ $owner->name } };
		on($node, "SELECT ves.register_agent_key('$tenant', '$agent', $key, '\\x$public')");
	}
}
my $sequencer_key = on($q, q{SELECT encode(public_key, 'hex') FROM ves.sequencer_identity()});
like($sequencer_key, qr/^[0-9a-f]{64}$/, 'Q has its sequencer key');

my $policy = '{"strategy": "last_write_wins", "review_window_ms": 0}';
sub connect_to_q
{
	my ($node, $name) = @_;
	my $conninfo = sprintf('host=%s port=%d dbname=postgres user=%s', $q->host, $q->port,
		scalar getpwuid($<));
	on($node, qq{SELECT ves.set_conflict_policy('$tenant', '*', '$policy')});
	on($node, qq{SELECT ves.create_destination('$name', 'ves_postgres', 'postgresql://127.0.0.1:} . $q->port
		  . qq{/postgres', '{"conninfo": "$conninfo", "sequencer_public_key": "$sequencer_key", "pull": true,
		    "tenant_id": "$tenant", "store_id": "$store", "pull_interval_ms": 100, "backoff_base_ms": 50,
		    "backoff_cap_ms": 500, "max_attempts": 1000, "breaker_threshold": 0}')});
}
# Q trusts the local account (its socket asks for no password), which only
# a superuser's ves.remote_password_required = off allows.
for my $node ($a, $b)
{
	$node->append_conf('postgresql.conf', 'ves.remote_password_required = off');
	$node->reload;
}
connect_to_q($_, 'q') for ($a, $b);

# Random edits on both stores: products (upserts of a few fields, from a
# person or a platform) and stock (counts and adjustments) of the same SKUs.
my @sources = qw(manual shopify amazon);
sub edits
{
	my ($node, $n) = @_;
	my $sql = '';
	for (1 .. $n)
	{
		my $r = rand();
		if ($r < 0.6)
		{
			my $p = 'p-' . int(rand(6));
			my %state = map { $_ => int(rand(5)) } grep { rand() < 0.6 } qw(title price colour);
			my $state = $json->encode(\%state);
			$sql .= "SELECT ves.upsert('$tenant', '$store', 'product', '$p', '$state', NULL, '"
			  . $sources[ int(rand(@sources)) ] . "');\n";
		}
		elsif ($r < 0.8)
		{
			$sql .= sprintf("SELECT ves.set_stock('%s', '%s', 'sku-%d', %d);\n", $tenant, $store, int(rand(4)),
				10 + int(rand(20)));
		}
		else
		{
			# Only what is on hand can be removed.
			my ($sku, $n) = ('sku-' . int(rand(4)), 1 + int(rand(3)));
			$sql .= "SELECT ves.adjust_stock('$tenant', '$store', '$sku', -$n) WHERE (SELECT on_hand - reserved
			           FROM ves.inventory WHERE tenant_id = '$tenant' AND sku = '$sku') >= $n;\n";
		}
	}
	on($node, $sql);
}

# The events of the tenant's stores, without the sync stream: each node's
# sync.* reports of its own pulls (README "Sync events") stay on that node.
sub events_of
{
	return on($_[0], "SELECT count(*) FROM ves.events WHERE tenant_id = '$tenant' AND entity_type <> 'sync'");
}

# The head of the stream at the sequencer in use (Q, later the mock).
my $head_of = sub { return on($q, "SELECT ves.sequencer_head('$tenant', '$store')"); };

# Converged: both stores hold every event Q sequenced and Q every event of
# both, nothing is waiting to be pushed or pulled, twice in a row.
sub quiescent
{
	my $steady = 0;
	return wait_until(
		240,
		sub {
			my $head = $head_of->();
			my ($ea, $eb) = (events_of($a), events_of($b));
			my $open = 0;
			$open += on($_, "SELECT count(*) FROM ves.outbox WHERE status NOT IN ('synced', 'acknowledged')
			                 AND tenant_id = '$tenant'") for ($a, $b);
			my $lag = 0;
			$lag += on($_, "SELECT coalesce(sum(lag), 0) + coalesce(sum((cursor - 1 < head)::int), 0) FROM ves.pull_status
			                WHERE tenant_id = '$tenant'")
			  for ($a, $b);
			my $ok = $open == 0 && $lag == 0 && $ea == $head && $eb == $head;
			$steady = $ok ? $steady + 1 : 0;
			return $steady >= 3;
		});
}

sub snapshot
{
	my ($node) = @_;
	return join "\n",
	  on($node, "SELECT entity_type, entity_id, state::text, deleted FROM ves.entity_state
	             WHERE tenant_id = '$tenant' ORDER BY 1, 2"),
	  on($node, "SELECT sku, location, on_hand, reserved FROM ves.inventory WHERE tenant_id = '$tenant' ORDER BY 1, 2"),
	  on($node, "SELECT string_agg(event_id::text, ',' ORDER BY event_id) FROM ves.events
	             WHERE tenant_id = '$tenant' AND entity_type <> 'sync'");
}

# Conflicts: each store records the conflicts it decides, and every record
# travels as a signed sync.conflict_detected event, so both stores hold the
# same records (README, "Applying events from other nodes").
my $conflicts = qq{SELECT string_agg(conflict_id || ' ' || entity_id || ' ' || conflict_type || ' ' || rule || ' '
                                     || status || ' ' || array_to_string(fields, '+') || ' ' || remote_state::text,
                                     ',' ORDER BY conflict_id)
                   FROM ves.conflicts WHERE tenant_id = '$tenant'};

sub same_everywhere
{
	my ($what) = @_;
	ok(quiescent(), "$what: both stores and the sequencer are in step")
	  or diag join ' ', (map { $_->name . '=' . events_of($_) } ($a, $b)),
	  'sequencer=' . $head_of->(),
	  on($a, q{SELECT string_agg(status || ':' || coalesce(last_error, ''), ' ') FROM ves.outbox WHERE status <> 'synced'});
	is(snapshot($a), snapshot($b), "$what: the same events, entity state and inventory on both stores");
	is( on($a, q{SELECT count(*) FROM ves.applied_events}) + 0,
		on($a, q{SELECT count(DISTINCT event_id) FROM ves.applied_events}) + 0,
		"$what: nothing applied twice on A");
	is(on($a, $conflicts), on($b, $conflicts), "$what: the same conflict records on both stores");
	is(on($_, q{SELECT count(*) FROM ves.verify_events()}), '0', "$what: every event verifies on " . $_->name)
	  for ($a, $b);
}

# --- concurrent edits, both ways through Q ------------------------------------------

for (1 .. 5) { edits($a, 12); edits($b, 12); }
same_everywhere('after concurrent edits');
cmp_ok(events_of($a), '>', 60, 'many events went both ways');
is( on($b, q{SELECT pull_lag || ' ' || pull_head FROM ves.get_sync_status() WHERE destination = 'q'}),
	'0 ' . $head_of->(), 'ves.get_sync_status shows the source\'s head and no lag');
cmp_ok(on($a, q{SELECT count(*) FROM ves.applied_events}), '>', 20, 'A applied B\'s events');
is( on($a, q{SELECT count(*) FROM ves.outbox o JOIN ves.events e ON e.event_id = o.event_id
             WHERE e.source_agent_id NOT IN (SELECT agent_id FROM ves.local_agents)}),
	'0', 'events A pulled are not pushed back to where they came from');
cmp_ok(on($b, q{SELECT count(*) FROM ves.applied_events}), '>', 20, 'B applied A\'s events');
cmp_ok(on($a, q{SELECT count(*) FROM ves.conflicts WHERE entity_type = 'product'}), '>', 0,
	'concurrent edits of the same products were detected as conflicts');
is( on($a, q{SELECT count(*) FROM ves.sequencer_receipts r JOIN ves.events e USING (event_id)
             WHERE e.source_agent_id = (SELECT agent_id FROM ves.local_agents)}),
	on($a, q{SELECT count(*) FROM ves.events WHERE source_agent_id = (SELECT agent_id FROM ves.local_agents)
	         AND entity_type <> 'sync'}),
	'every event A made has its verified receipt from Q');
# A's pulls that applied B's events are reported on A's sync stream for Q,
# in pairs, and that stream stays on A.
is( on($a, q{SELECT (count(*) FILTER (WHERE event_type = 'sync.started') > 0
                     AND count(*) FILTER (WHERE event_type = 'sync.started')
                         = count(*) FILTER (WHERE event_type = 'sync.completed'))::text
                    || '|' || string_agg(DISTINCT entity_id, ',')
             FROM ves.events WHERE entity_type = 'sync'}),
	'true|q', 'A\'s pulls from Q appended sync.started and sync.completed pairs on its sync stream for Q');
is( on($q, q{SELECT count(*) FROM ves.sequencer_events WHERE entity_type = 'sync'}), '0',
	'which are not sent to Q');

# --- a forged event ------------------------------------------------------------------

# Q's own agent signs an event for the stream; Q sequences it, then its
# stored copy is altered before either store reads it.
on($_, q{SELECT ves.pause_destination('q')}) for ($a, $b);
my ($q_agent, $q_key, $q_public) = split /\|/,
  on($q, "SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$store')");
on($_, "SELECT ves.register_agent_key('$tenant', '$q_agent', $q_key, '\\x$q_public')") for ($a, $b);
my $forged = on($q, qq{
	SELECT (ves.append('$tenant', '$store', 'note', 'n-1', 'note.added', '{"text": "genuine"}')).event_id});
my $answer = $json->decode(on($q, qq{SELECT ves.sequence_events('$q_agent', jsonb_build_array(ves.export_event('$forged')))}));
is($answer->{eventsAccepted}, 1, 'Q sequences an event of its own agent');
on($q, qq{UPDATE ves.sequencer_events SET envelope = jsonb_set(envelope, '{payload,text}', '"forged"')
          WHERE event_id = '$forged'});
on($_, q{SELECT ves.resume_destination('q')}) for ($a, $b);
for my $node ($a, $b)
{
	ok( wait_until(60, sub { on($node, qq{SELECT count(*) FROM ves.security_alerts WHERE event_id = '$forged'}) > 0 }),
		$node->name . ': the forged event raises a security alert');
	is(on($node, qq{SELECT count(*) FROM ves.events WHERE event_id = '$forged'}), '0',
		$node->name . ': and is not stored');
	is(on($node, q{SELECT stopped FROM ves.pull_status}), 't', $node->name . ': the stream waits for an operator');
}
edits($a, 3);    # A's own changes still go to Q meanwhile
on($q, qq{UPDATE ves.sequencer_events SET envelope = jsonb_set(envelope, '{payload,text}', '"genuine"')
          WHERE event_id = '$forged'});
for my $node ($a, $b)
{
	on($node, qq{SELECT ves.acknowledge_security_alert(id, action => 'retry') FROM ves.security_alerts
	             WHERE event_id = '$forged' AND acknowledged_at IS NULL});
}
same_everywhere('after the forgery was repaired and retried');
is(on($b, qq{SELECT payload ->> 'text' FROM ves.events WHERE event_id = '$forged'}), 'genuine',
	'the genuine event is stored on B');

# --- a hole in the stream --------------------------------------------------------------

on($b, q{SELECT ves.pause_destination('q')});
my $cursor_b = on($b, q{SELECT cursor FROM ves.pull_status});
# A appends until Q holds at least three events B has not read.
ok( wait_until(60, sub {
	edits($a, 4);
	on($q, "SELECT ves.sequencer_head('$tenant', '$store')") >= $cursor_b + 2 }),
	'A pushed new events while B does not pull');
my $hole = $cursor_b + 1;
on($q, "UPDATE ves.sequencer_events SET sequence_number = sequence_number + 1000000
        WHERE tenant_id = '$tenant' AND store_id = '$store' AND sequence_number = $hole");
my $gaps = on($b, q{SELECT gaps FROM ves.pull_status});
on($b, q{SELECT ves.resume_destination('q')});
ok(wait_until(60, sub { on($b, q{SELECT gaps FROM ves.pull_status}) > $gaps }), 'B finds the hole');
is(on($b, q{SELECT cursor FROM ves.pull_status}), $hole, 'and applies nothing past it');
on($q, "UPDATE ves.sequencer_events SET sequence_number = sequence_number - 1000000
        WHERE tenant_id = '$tenant' AND store_id = '$store' AND sequence_number = $hole + 1000000");
same_everywhere('after the hole was filled');

# --- kill -9 of each node mid-sync -------------------------------------------------------

for my $victim ($a, $q, $b)
{
	edits($a, 10);
	edits($b, 10);
	my @children = keys %{ children_of(postmaster_pid($victim)) };
	$victim->kill9;
	# A new postmaster starts once the old one's children have gone.
	wait_until(60, sub { !grep { kill 0, $_ } @children });
	$victim->start;
	edits($victim == $q ? $a : $victim, 5);
	same_everywhere('after kill -9 of ' . $victim->name);
}

# Q's stream is committed in Merkle batches; any event's proof verifies.
ok(wait_until(60, sub { on($q, "SELECT committed_through = head FROM ves.sequencer_status() WHERE tenant_id = '$tenant'") eq 't' }),
	'Q commits its stream in batches');
my $proof = $json->decode(on($q, "SELECT ves.sequencer_proof('$tenant', '$store', 7)"));
is( on($q, sprintf(q{SELECT ves.verify_merkle_proof(decode('%s', 'hex'), ARRAY[%s]::bytea[], %d, decode('%s', 'hex'))},
			$proof->{leaf_hash}, join(',', map { "decode('$_', 'hex')" } @{ $proof->{proof_path} }),
			$proof->{leaf_index}, $proof->{merkle_root})),
	't', 'an inclusion proof from Q verifies against its batch root');

# --- the same two stores through the mock StateSet sequencer ---------------------------

# Another stream (tenant, store) goes through test/mock/sequencer.py, which
# checks every envelope with its own implementation of the VES v1 hashes and
# signatures and serves them back with its receipts.
my $mock = start_sequencer();
$tenant = '33333333-3333-4333-8333-333333333333';
$store = '44444444-4444-4444-8444-444444444444';
$head_of = sub { return $mock->call('GET', "/_events?tenant_id=$tenant&store_id=$store")->{head} // 0; };
my %mock_agent;
for my $node ($a, $b)
{
	my ($agent, $key, $public) = split /\|/,
	  on($node, "SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$store')");
	$mock_agent{ $node->name } = [ $agent, $key, $public ];
	$mock->call('POST', '/_keys', { tenant_id => $tenant, agent_id => $agent, key_id => $key + 0, public_key => "0x$public" });
}
on($a, "SELECT ves.register_agent_key('$tenant', '$mock_agent{store_b}[0]', $mock_agent{store_b}[1], '\\x$mock_agent{store_b}[2]')");
on($b, "SELECT ves.register_agent_key('$tenant', '$mock_agent{store_a}[0]', $mock_agent{store_a}[1], '\\x$mock_agent{store_a}[2]')");
(my $mock_key = $mock->call('GET', '/_sequencer')->{public_key}) =~ s/^0x//;
for my $node ($a, $b)
{
	on($node, qq{SELECT ves.set_conflict_policy('$tenant', '*', '$policy')});
	on($node, qq{SELECT ves.create_destination('mock', 'ves_sequencer', '} . $mock->url('') . qq{',
	  '{"sequencer_public_key": "$mock_key", "pull": true, "tenant_id": "$tenant", "store_id": "$store",
	    "pull_interval_ms": 100, "backoff_base_ms": 50, "backoff_cap_ms": 500, "max_attempts": 1000,
	    "breaker_threshold": 0}')});
}
for (1 .. 4) { edits($a, 10); edits($b, 10); }
same_everywhere('through the mock sequencer');
cmp_ok($mock->call('GET', '/_stats')->{accepted}, '>', 40, 'the mock sequencer accepted the events it verified');
is($mock->call('GET', '/_stats')->{rejected} // 0, 0, 'and rejected none');

done_testing();
