# pg_ves as the VES sequencer (ves.sequence_events): two sessions pushing to
# one stream get gapless, unique numbers; a batch holding one stream's lock
# does not block another stream; receipts, payload hashes, agent signatures,
# leaves and batch commitments (made by the sync worker) verify with the
# mock sequencer's own implementation of VES v1 on python3-cryptography, not
# with pg_ves code; proofs verify; the sequencer key survives a restart and
# is sealed at rest.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('sequencer');
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $tenant = '11111111-1111-4111-8111-111111111111';
my $s1 = '22222222-2222-4222-8222-222222222222';
my $s2 = '33333333-3333-4333-8333-333333333333';
my $n = 200;

# Signed events of two stores, exported as VES v1 envelopes.
sql(qq{
CREATE TABLE ev (i int, store uuid, id uuid, agent uuid, envelope jsonb, PRIMARY KEY (store, i));
INSERT INTO ev (i, store, id)
SELECT g, s, (ves.append('$tenant', s, 'Item', 'sku-' || (g % 7), 'item.counted',
                         jsonb_build_object('i', g, 'note', 'café'))).event_id
FROM (VALUES ('$s1'::uuid), ('$s2'::uuid)) v(s), generate_series(1, $n) g;
UPDATE ev SET envelope = ves.export_event(id);
UPDATE ev SET agent = (envelope->>'source_agent_id')::uuid;
});

# Two sessions push the events of store 1 at the same time, one event per
# transaction, odd and even numbers.
sub pusher
{
	my ($parity) = @_;
	my ($out, $err) = ('', '');
	my $sql = qq{DO \$\$ DECLARE r record; BEGIN
	  FOR r IN SELECT agent, envelope FROM ev WHERE store = '$s1' AND i % 2 = $parity ORDER BY i LOOP
	    PERFORM ves.sequence_events(r.agent, jsonb_build_array(r.envelope));
	    COMMIT;
	  END LOOP; END \$\$;};
	my $h = IPC::Run::start([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return [ $h, \$out, \$err ];
}
my @pushers = (pusher(0), pusher(1));
for my $p (@pushers)
{
	ok($p->[0]->finish, 'a pushing session finished') or diag ${ $p->[2] };
}
is( sql(qq{SELECT count(*) || ' ' || count(DISTINCT sequence_number) || ' ' || min(sequence_number) || ' ' || max(sequence_number)
           FROM ves.sequencer_events WHERE tenant_id = '$tenant' AND store_id = '$s1'}),
	"$n $n 1 $n", 'concurrent pushes to one stream: numbers 1..n, each once');
is(sql("SELECT ves.sequencer_head('$tenant', '$s1')"), $n, 'the head is n');
is( sql(qq{SELECT count(*) FROM ves.sequencer_events s JOIN ev ON ev.envelope->>'event_id' = s.event_id::text
           WHERE s.store_id = '$s1'}), $n, 'every event of store 1 was sequenced');

# One open batch holds store 1's row; store 2 goes on, store 1 waits.
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe(qq{SELECT ves.sequence_events(agent, jsonb_agg(envelope)) FROM ev WHERE store = '$s1' AND i <= 3 GROUP BY agent});
my ($ok, $out, $err) = $node->psql('postgres', qq{
	SET lock_timeout = '5s';
	SELECT (ves.sequence_events(agent, jsonb_agg(envelope ORDER BY i)))->'sequenceEnd' FROM ev WHERE store = '$s2' AND i <= 100 GROUP BY agent});
is($out, '100', 'another stream is sequenced while a batch of the first is open');
($ok, $out, $err) = $node->psql('postgres', qq{
	SET lock_timeout = '300ms';
	SELECT ves.sequence_events(agent, jsonb_build_array(envelope)) FROM ev WHERE store = '$s1' AND i = 1});
like($err, qr/lock timeout/, 'the same stream waits for the open batch');
$holder->query_safe('COMMIT');
$holder->quit;
sql(qq{SELECT ves.sequence_events(agent, jsonb_agg(envelope ORDER BY i)) FROM ev WHERE store = '$s2' AND i > 100 GROUP BY agent});
is(sql("SELECT ves.sequencer_head('$tenant', '$s2')"), $n, 'the second stream is complete');

# The worker commits both streams in Merkle batches (housekeeping, every 10 s).
ok( wait_until(60, sub { sql(q{SELECT count(*) FROM ves.sequencer_status() WHERE committed_through = head}) == 2 }),
	'the sync worker committed every sequenced event')
  or diag sql('SELECT * FROM ves.sequencer_status()');
is( sql(qq{SELECT bool_and(ok) FROM (
             SELECT previous_root = coalesce(lag(merkle_root) OVER w, decode(repeat('00', 32), 'hex'))
                    AND start_sequence = coalesce(lag(end_sequence) OVER w, 0) + 1 AS ok
             FROM ves.sequencer_commitments WINDOW w AS (PARTITION BY tenant_id, store_id ORDER BY start_sequence)) x}),
	't', 'commitments are contiguous and chained');

# Everything checked outside pg_ves, with test/mock/sequencer.py's functions.
my $pull = sql(qq{SELECT ves.sequenced_events('$tenant', '$s1', 1, 1000)});
my $identity = sql(q{SELECT encode(public_key, 'hex') FROM ves.sequencer_identity()});
my $agent_key = sql(qq{SELECT encode(k.public_key, 'hex') FROM ves.agent_keys k
                       WHERE k.agent_id = (SELECT agent FROM ev WHERE store = '$s1' LIMIT 1)});
my $commitments = sql(qq{SELECT json_agg(json_build_object('start', start_sequence, 'end', end_sequence,
                           'root', encode(merkle_root, 'hex')) ORDER BY start_sequence)
                         FROM ves.sequencer_commitments WHERE store_id = '$s1'});
my $input = JSON::PP->new->utf8->encode({ pull => JSON::PP->new->utf8->decode($pull), sequencer_key => $identity,
	agent_key => $agent_key, commitments => JSON::PP->new->utf8->decode($commitments) });
my $script = <<'PY';
import json, sys
sys.path.insert(0, sys.argv[1])
import sequencer as m
d = json.load(sys.stdin)
seq_key, agent_key = bytes.fromhex(d["sequencer_key"]), bytes.fromhex(d["agent_key"])
bad, leaves = [], {}
for item in d["pull"]["events"]:
    env = m.Envelope(item["envelope"], "")
    n = item["envelope"]["sequence_number"]
    h = env.signing_hash()
    if m.payload_plain_hash(env.payload) != env.plain_hash: bad.append("payload %d" % n)
    if not m.ed25519_verify(agent_key, env.signature, h): bad.append("agent signature %d" % n)
    r = item["receipt"]
    rh = m.receipt_hash(env.tenant_id, env.store_id, env.event_id, n, h)
    if r["receiptHash"] != rh.hex() or r["sequenceNumber"] != n: bad.append("receipt hash %d" % n)
    if not m.ed25519_verify(seq_key, bytes.fromhex(r["sequencerSignature"]), rh): bad.append("receipt signature %d" % n)
    leaves[n] = m.leaf_hash(env.tenant_id, env.store_id, n, h, env.signature)
for c in d["commitments"]:
    root = m.merkle_root([leaves[i] for i in range(c["start"], c["end"] + 1)])
    if root.hex() != c["root"]: bad.append("root %d-%d" % (c["start"], c["end"]))
print("checked %d events, %d commitments; bad: %s" % (len(leaves), len(d["commitments"]), ",".join(bad) or "none"))
PY
my ($py_out, $py_err) = ('', '');
IPC::Run::run([ PgVesTest::Sink::python(), '-c', $script, "$ENV{PGVES_REPO}/test/mock" ], '<', \$input, '>', \$py_out, '2>', \$py_err);
like($py_out, qr/^checked $n events, \d+ commitments; bad: none$/,
	'payload hashes, agent signatures, receipts and Merkle roots verify with the mock\'s VES v1 code')
  or diag $py_err;

is( sql(qq{SELECT count(*) FILTER (WHERE ves.verify_merkle_proof(decode(p->>'leaf_hash', 'hex'),
             ARRAY(SELECT decode(h, 'hex') FROM jsonb_array_elements_text(p->'proof_path') h),
             (p->>'leaf_index')::bigint, decode(p->>'merkle_root', 'hex')))
           FROM generate_series(1, $n) g, LATERAL ves.sequencer_proof('$tenant', '$s2', g) p}),
	$n, 'every event of the second stream has a proof that verifies');

# A forged envelope (payload altered after signing) is rejected, numbered
# nothing, and the worker records a security alert for it.
my $forged = sql(qq{SELECT ves.sequence_events(agent, jsonb_build_array(
                      (envelope || '{"payload": {"i": 1, "note": "forged"}}') - 'event_id'
                      || jsonb_build_object('event_id', '0190f1e2-7b3c-7d4e-8f50-00000000f0f0')))
                    FROM ev WHERE store = '$s1' AND i = 1});
like($forged, qr/"reason": "invalid_payload_hash"/, 'a forged envelope is rejected');
ok( wait_until(30, sub { sql(q{SELECT count(*) FROM ves.security_alerts WHERE source = 'ves.sequence_events'
                                AND kind = 'event_payload_hash'
                                AND event_id = '0190f1e2-7b3c-7d4e-8f50-00000000f0f0'}) == 1 }),
	'and the worker recorded a security alert for it');
is(sql("SELECT ves.sequencer_head('$tenant', '$s1')"), $n, 'the head did not move');

# The key: sealed at rest, the same after a restart.
my $before = sql(q{SELECT sequencer_id || ' ' || encode(public_key, 'hex') FROM ves.sequencer_identity()});
my $box = sql(q{SELECT encode(secret_box, 'hex') FROM ves.sequencer_key});
unlike($box, qr/\Q$identity\E/, 'the stored key material is a sealed box');
$node->restart;
is(sql(q{SELECT sequencer_id || ' ' || encode(public_key, 'hex') FROM ves.sequencer_identity()}), $before,
	'the sequencer identity survives a restart');
my $after = sql(qq{SELECT ves.sequence_events(agent, jsonb_agg(envelope)) FROM ev WHERE store = '$s1' AND i = 1 GROUP BY agent});
like($after, qr/"eventsAccepted": 0/, 'a replay after the restart is answered from the stored receipt');
my $receipt = JSON::PP->new->utf8->decode($after)->{receipts}[0];
is( sql(qq{SELECT ves.verify_ed25519(public_key, decode('$receipt->{receiptHash}', 'hex'), decode('$receipt->{sequencerSignature}', 'hex'))
           FROM ves.sequencer_identity()}), 't', 'and its signature still verifies');

done_testing();
