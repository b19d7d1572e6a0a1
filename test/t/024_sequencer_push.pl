# Destinations of kind ves_sequencer push events to a VES v1 sequencer with
# StateSet's API (test/mock/sequencer.py, which checks the envelopes with its
# own implementation of the hashes and signatures): every event gets a
# receipt whose hash (and signature, when the destination knows the
# sequencer's key) the worker verified before storing it in
# ves.sequencer_receipts, with sequence numbers 1..n in order per stream. An
# identical re-push (a second destination to the same sequencer) comes back
# as the same receipt and is a success; a rejection (an agent key the
# sequencer does not know), a refused credential and a receipt that does not
# verify are permanent, with the reason; a throttled push is retried. A
# worker running as a role holding only ves_worker, and ves.push_events,
# store receipts as well.
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $json = JSON::PP->new->utf8->canonical;

my $node = new_node('sequencer_push');
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $seq = start_sequencer('--api-key', 'ss_good', '--config', '{"retry_after": 1}');
my $base = $seq->url('');

my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';
my $unknown_store = '33333333-3333-4333-8333-333333333333';

# The sequencer knows the agent key of $store only.
my ($agent, $key_id, $public) = split /\|/,
  sql("SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$store')");
sql("SELECT ves.create_agent_key('$tenant', '$unknown_store')");
$seq->call('POST', '/_keys',
	{ tenant_id => $tenant, agent_id => $agent, key_id => $key_id + 0, public_key => "0x$public" });
(my $sequencer_key = $seq->call('GET', '/_sequencer')->{public_key}) =~ s/^0x//;

# The options are checked when the destination is written.
my ($ok, $out, $err) = $node->psql('postgres',
	"SELECT ves.create_destination('x', 'ves_sequencer', '$base', '{\"auth\": \"basic\"}')");
like($err, qr/auth must be "api_key" or "bearer"/, 'an unknown auth is refused');
($ok, $out, $err) = $node->psql('postgres',
	"SELECT ves.create_destination('x', 'ves_sequencer', '$base', '{\"sequencer_public_key\": \"abc\"}')");
like($err, qr/sequencer_public_key must be 64 hex characters/, 'a malformed sequencer key is refused');
($ok, $out, $err) = $node->psql('postgres',
	"SELECT ves.create_destination('x', 'ves_sequencer', '$base', '{\"colour\": 1}')");
like($err, qr/Known options: .*auth, sequencer_public_key/, 'the hint lists the kind\'s own options');

my $fast = '"max_attempts": 4, "backoff_base_ms": 50, "backoff_cap_ms": 200';
sub destination
{
	my ($name, $entity, $options) = @_;
	sql("SELECT ves.create_destination('$name', 'ves_sequencer', '$base',
	       '{\"entity_types\": [\"$entity\"], $fast, $options}')");
}
destination('seq_signed', 'Order', qq{"secret": "ss_good", "sequencer_public_key": "$sequencer_key"});
destination('seq_plain', 'Order', qq{"secret": "ss_good", "auth": "api_key"});
destination('seq_badkey', 'Bad', qq{"secret": "ss_wrong"});
destination('seq_forged', 'Forged', qq{"secret": "ss_good", "sequencer_public_key": "} . ('ab' x 32) . '"');
is(sql(q{SELECT kind_options::text FROM ves.destinations WHERE name = 'seq_plain'}),
	'{"auth": "api_key"}', 'the kind\'s own options are kept in kind_options');

# The first push is throttled once (429, Retry-After: 1) and then retried.
$seq->call('POST', '/_faults', { kind => 'throttle', times => 1, retry_after => 1 });

my $n = 5;
my @ids = split /\n/, sql(
	"SELECT (ves.append('$tenant', '$store', 'Order', 'o-1', 'order.updated', jsonb_build_object('step', g))).event_id
	 FROM generate_series(1, $n) g");
my ($unknown) = sql("SELECT (ves.append('$tenant', '$unknown_store', 'Order', 'o-9', 'order.created', '{}')).event_id");
my ($bad) = sql("SELECT (ves.append('$tenant', '$store', 'Bad', 'b-1', 'bad.created', '{}')).event_id");
my ($forged) = sql("SELECT (ves.append('$tenant', '$store', 'Forged', 'f-1', 'forged.created', '{}')).event_id");

ok( wait_until(60, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status NOT IN ('synced', 'dead')}) == 0 }),
	'every row is synced or dead')
  or diag sql(q{SELECT status, attempts, last_error FROM ves.outbox});

my $receipts = sql(qq{
	SELECT string_agg(r.sequence_number::text, ',' ORDER BY e.position)
	FROM ves.sequencer_receipts r JOIN ves.events e ON e.event_id = r.event_id
	JOIN ves.destinations d ON d.id = r.destination_id
	WHERE d.name = 'seq_signed'});
is($receipts, join(',', 1 .. $n), 'each event has a receipt, sequence numbers 1..n in order');
is(sql(q{SELECT count(*) FROM ves.sequencer_receipts r JOIN ves.destinations d ON d.id = r.destination_id
          WHERE d.name = 'seq_signed' AND r.signature_verified}), $n,
	'with sequencer_public_key every receipt signature was verified');

# The sequencer's own record agrees: the same events at the same numbers,
# then the one whose receipt pg_ves refused below (seq_forged), which the
# sequencer did sequence.
my $stream = $seq->call('GET', "/_events?tenant_id=$tenant&store_id=$store");
is( join(',', map { $_->{envelope}{event_id} } @{ $stream->{events} }),
	join(',', @ids, $forged), 'the sequencer holds exactly these events, in this order');
splice @{ $stream->{events} }, $n;
is( sql(qq{SELECT string_agg(encode(r.receipt_hash, 'hex'), ',' ORDER BY r.sequence_number)
           FROM ves.sequencer_receipts r JOIN ves.destinations d ON d.id = r.destination_id
           WHERE d.name = 'seq_signed'}),
	join(',', map { $_->{receipt}{receiptHash} } @{ $stream->{events} }),
	'the stored receipt hashes are the sequencer\'s');

# The second destination pushed the same events again: its receipts are the
# originals (a replay is not a rejection), stored unverified by signature.
is( sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
          WHERE d.name = 'seq_plain' AND o.status = 'synced'}), $n, 'an identical re-push is a success');
is( sql(q{SELECT string_agg(p.sequence_number || ':' || p.signature_verified, ',' ORDER BY p.sequence_number)
          FROM ves.sequencer_receipts p JOIN ves.destinations d ON d.id = p.destination_id
          WHERE d.name = 'seq_plain'}),
	join(',', map { "$_:false" } 1 .. $n), 'with the same sequence numbers');
cmp_ok($seq->call('GET', '/_stats')->{replayed}, '>=', $n, 'the sequencer answered replays');
cmp_ok($seq->call('GET', '/_stats')->{throttled}, '>=', 1, 'a push was throttled and then delivered');

sub row
{
	my ($dest, $event) = @_;
	return sql(qq{SELECT o.status || '|' || coalesce(o.last_error, '') FROM ves.outbox o
	              JOIN ves.destinations d ON d.id = o.destination_id
	              JOIN ves.events e ON e.position = o.event_position
	              WHERE d.name = '$dest' AND e.event_id = '$event'});
}
like(row('seq_signed', $unknown), qr/^dead\|rejected by the sequencer: agent_key_invalid: Agent key not found/,
	'an event whose agent key the sequencer does not know is dead with its reason');
like(row('seq_badkey', $bad), qr/^dead\|unauthorized: HTTP 401 invalid_api_key/,
	'a wrong API key is permanent: unauthorized');
is(sql(q{SELECT attempts FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
         WHERE d.name = 'seq_badkey'}), 1, 'and not retried');
like(row('seq_forged', $forged), qr/^dead\|receipt does not verify: sequencerSignature does not verify/,
	'a receipt not signed by the configured sequencer key is not a success');
is(sql(qq{SELECT count(*) FROM ves.sequencer_receipts WHERE event_id IN ('$unknown', '$bad', '$forged')
          AND destination_id <> (SELECT id FROM ves.destinations WHERE name = 'seq_plain')}),
	0, 'no receipt is stored for them');

# Readers see receipts of their tenant only.
sql(q{CREATE ROLE receipt_reader LOGIN IN ROLE ves_reader});
is( $node->safe_psql('postgres', "SET ves.tenant_id = '$tenant'; SELECT count(*) FROM ves.sequencer_receipts",
		extra_params => [ '-U', 'receipt_reader' ]),
	2 * $n, 'a reader of the tenant reads its receipts');
is( $node->safe_psql('postgres',
		"SET ves.tenant_id = '99999999-9999-4999-8999-999999999999'; SELECT count(*) FROM ves.sequencer_receipts",
		extra_params => [ '-U', 'receipt_reader' ]),
	0, 'a reader of another tenant reads none');

# A worker running as a role holding only ves_worker stores receipts too.
sql('CREATE ROLE seq_worker LOGIN');
sql('GRANT ves_worker TO seq_worker');
sql(q{ALTER SYSTEM SET ves.worker_role = 'seq_worker'});
sql('SELECT pg_reload_conf()');
ok( wait_until(60, sub { sql(q{SELECT count(*) FROM pg_stat_activity
                              WHERE backend_type = 'pg_ves worker' AND usename = 'seq_worker'}) > 0 }),
	'the worker runs as seq_worker');
my ($late) = sql("SELECT (ves.append('$tenant', '$store', 'Order', 'o-1', 'order.updated', '{}')).event_id");
ok( wait_until(60, sub { sql(qq{SELECT count(*) FROM ves.sequencer_receipts WHERE event_id = '$late'}) == 2 }),
	'as seq_worker it stores the receipts of both destinations')
  or diag sql(q{SELECT status, last_error FROM ves.outbox WHERE status <> 'synced'});
is( sql(qq{SELECT r.sequence_number || ':' || r.signature_verified FROM ves.sequencer_receipts r
           JOIN ves.destinations d ON d.id = r.destination_id WHERE d.name = 'seq_signed' AND r.event_id = '$late'}),
	($n + 2) . ':true', 'the next number of the stream (after the one refused above), verified');

# ves.push_events sends and records through the same deliverer: in a
# database with no worker, a push stores its verified receipt too.
$node->safe_psql('postgres', 'CREATE DATABASE manual');
$node->safe_psql('manual', 'CREATE EXTENSION pg_ves');
sub manual { return $node->safe_psql('manual', $_[0]); }
my $manual_store = '44444444-4444-4444-8444-444444444444';
my ($m_agent, $m_key, $m_public) = split /\|/,
  manual("SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$manual_store')");
$seq->call('POST', '/_keys',
	{ tenant_id => $tenant, agent_id => $m_agent, key_id => $m_key + 0, public_key => "0x$m_public" });
manual("SELECT ves.create_destination('seq_manual', 'ves_sequencer', '$base',
          '{\"secret\": \"ss_good\", \"auth\": \"api_key\", \"sequencer_public_key\": \"$sequencer_key\"}')");
my ($m_event) = manual("SELECT (ves.append('$tenant', '$manual_store', 'Order', 'm-1', 'order.created', '{}')).event_id");
is(manual(q{SELECT sent || ',' || synced FROM ves.push_events('seq_manual')}), '1,1',
	'ves.push_events delivers to a sequencer');
is(manual(qq{SELECT sequence_number || ':' || signature_verified FROM ves.sequencer_receipts
             WHERE event_id = '$m_event'}), '1:true', 'and stores its verified receipt');

# Events of one stream go to the sequencer together: 30 new orders (30
# entities, so none waits behind another) reach it in fewer requests.
my $before = scalar $seq->requests('/api/v1/ves/events/ingest');
my @burst = append_orders(\&sql, $tenant, $store, 30, 'burst');
ok( wait_until(60, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status = 'pending'}) == 0 }),
	'the burst is delivered');
my @bodies = map { $json->decode($_->{body}) } grep { $_->{body} =~ /burst-/ }
  ($seq->requests('/api/v1/ves/events/ingest'))[$before .. scalar($seq->requests('/api/v1/ves/events/ingest')) - 1];
my %per_request;
my $events = 0;
for my $b (@bodies) { $events += @{ $b->{events} }; $per_request{ scalar @{ $b->{events} } }++; }
cmp_ok((sort { $b <=> $a } keys %per_request)[0], '>', 1, 'one request carries several events of the stream');
cmp_ok(scalar(@bodies), '<', 60, 'fewer requests than events (30 events to each of two destinations)');
is(sql(q{SELECT count(*) FROM ves.sequencer_receipts r JOIN ves.events e ON e.event_id = r.event_id
         WHERE e.entity_id LIKE 'burst-%'}), 60, 'and every event of the burst has its receipt at both');

# Version conflicts. With base_version the destination sends each event's
# base_version; a sequencer that has accepted another number of events for
# the entity refuses it. Here another agent's event for Stock s-1 reached
# the sequencer first.
my $third = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';
my $seed = '07' x 32;
$seq->call('POST', '/_keys', { tenant_id => $tenant, agent_id => $third, key_id => 1, seed => $seed });
my $foreign = $seq->call('POST', '/_sign', { seed => $seed, envelope => {
	tenant_id => $tenant, store_id => $store, source_agent_id => $third, agent_key_id => 1,
	entity_type => 'Stock', entity_id => 's-1', event_type => 'stock.counted', payload => { on_hand => 3 } } })->{envelope};
my $http = HTTP::Tiny->new(timeout => 30);
my $pushed = $http->post($seq->url('/api/v1/ves/events/ingest'), {
	headers => { 'content-type' => 'application/json', authorization => 'ApiKey ss_good' },
	content => $json->encode({ agentId => $third, events => [$foreign] }) });
is($json->decode($pushed->{content})->{eventsAccepted}, 1, 'another agent\'s event for s-1 is sequenced first');

destination('seq_versioned', 'Stock', qq{"secret": "ss_good", "sequencer_public_key": "$sequencer_key", "base_version": true});
my ($s1) = sql("SELECT (ves.append('$tenant', '$store', 'Stock', 's-1', 'stock.counted', '{\"on_hand\": 5}')).event_id");
my ($s1b) = sql("SELECT (ves.append('$tenant', '$store', 'Stock', 's-1', 'stock.counted', '{\"on_hand\": 6}')).event_id");
my ($s2) = sql("SELECT (ves.append('$tenant', '$store', 'Stock', 's-2', 'stock.counted', '{\"on_hand\": 1}')).event_id");
ok( wait_until(60, sub { row('seq_versioned', $s1) =~ /^conflict/ && row('seq_versioned', $s2) =~ /^synced/ }),
	'the refused event is in status conflict; another entity\'s event is sequenced')
  or diag sql(q{SELECT entity_id, status, last_error FROM ves.outbox WHERE entity_type = 'Stock'});
like(row('seq_versioned', $s1), qr/^conflict\|version conflict at the sequencer: version_conflict: expected 0, actual 1/,
	'with the sequencer\'s reason');
is(sql(q{SELECT count(*) FROM ves.list_outbox_events(status => 'conflict')}), 1,
	'ves.list_outbox_events lists it under conflict');
is(sql(q{SELECT in_conflict FROM ves.get_sync_status() WHERE destination = 'seq_versioned'}), 1,
	'ves.get_sync_status counts it');
is(row('seq_versioned', $s1b), 'pending|', 's-1\'s next event waits behind it');
my ($conflict, $ctype, $crule, $cbase) = split /\|/, sql(q{SELECT c.conflict_id, c.conflict_type, c.rule, c.base_version
	FROM ves.open_conflicts o JOIN ves.conflicts c USING (conflict_id) WHERE c.entity_id = 's-1'});
is("$ctype|$crule|$cbase", 'version_mismatch|sequencer_version_conflict|0', 'a conflict is open for a person');
($ok, $out, $err) = $node->psql('postgres', "SELECT ves.resolve_conflict('$conflict', 'merge', '{}')");
like($err, qr/resolved with accept_local or accept_remote/, 'merge means nothing here and is refused');
sleep 1;
is(row('seq_versioned', $s1b), 'pending|', 's-1\'s next event still waits');

sql("SELECT ves.resolve_conflict('$conflict', 'accept_local')");
ok( wait_until(60, sub { row('seq_versioned', $s1) =~ /^synced/ && row('seq_versioned', $s1b) =~ /^synced/ }),
	'accept_local sends the event, and the one behind it, without the check')
  or diag sql(q{SELECT entity_id, status, last_error FROM ves.outbox WHERE entity_type = 'Stock'});
my %at = map { ($_->{envelope}{event_id} => $_->{envelope}{sequence_number}) }
  @{ $seq->call('GET', "/_events?tenant_id=$tenant&store_id=$store")->{events} };
ok($at{ $foreign->{event_id} } < $at{$s1} && $at{$s1} < $at{$s1b}, 'sequenced after the other agent\'s, in order');
is(sql(qq{SELECT count(*) FROM ves.sequencer_receipts WHERE event_id IN ('$s1', '$s1b') AND signature_verified}),
	2, 'with verified receipts');
is(sql(qq{SELECT status FROM ves.conflicts WHERE conflict_id = '$conflict'}), 'resolved', 'the conflict is resolved');

done_testing();
