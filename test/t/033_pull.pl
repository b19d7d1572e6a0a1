# Pull sources against the mock StateSet sequencer (test/mock/sequencer.py,
# which signs a third agent's events with its own Ed25519 code): events of
# another agent of the same store are pulled, verified and stored exactly as
# signed (ves.verify_event, the same signature and payload); the events this
# node pushed come back and are duplicates; a read that leaves a number out
# stops the pull there and the next pull heals it; a number the sequencer
# skipped holds the stream with an alert after three pulls, until an
# operator skips it (audited); a forged event (bad signature, bad receipt)
# raises an alert and stops the stream at its number with nothing after it
# applied, 'retry' reads it again; kill -9 of the postmaster in the middle
# of pulling loses nothing and applies nothing twice: the cursor, the
# counters and the stored events agree afterwards. Pulls that apply events
# append sync.started and sync.completed on the source's sync stream, idle
# polls nothing, failing reads one sync.failed per streak; a slow sequencer
# holds up no delivery.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $json = JSON::PP->new->utf8->canonical;

my $node = new_node('pull');
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->restart;
ok(enable_worker($node), 'a sync worker runs');
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $seq = start_sequencer('--api-key', 'ss_good');
my $base = $seq->url('');

my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';

# This node's agent key for the store, known to the sequencer.
my ($agent, $key_id, $public) = split /\|/,
  sql("SELECT agent_id, key_id, encode(public_key, 'hex') FROM ves.create_agent_key('$tenant', '$store')");
$seq->call('POST', '/_keys',
	{ tenant_id => $tenant, agent_id => $agent, key_id => $key_id + 0, public_key => "0x$public" });
(my $sequencer_key = $seq->call('GET', '/_sequencer')->{public_key}) =~ s/^0x//;

# A third agent of the same store (another node), its key registered with
# the sequencer and here.
my $agent3 = '33333333-3333-4333-8333-333333333333';
my $seed3 = '5a' x 32;
my ($pub3) = map { $_->{public_key} } @{ $seq->call('POST', '/_keys',
		{ tenant_id => $tenant, agent_id => $agent3, key_id => 1, seed => $seed3 })->{keys} };
$pub3 =~ s/^0x//;
sql("SELECT ves.register_agent_key('$tenant', '$agent3', 1, '\\x$pub3')");

my $n3 = 0;
# Signs $count new events of the third agent and has the sequencer sequence
# them; returns the signed envelopes.
sub third_events
{
	my ($count) = @_;
	my @envs;
	for (1 .. $count)
	{
		$n3++;
		push @envs, $seq->call('POST', '/_sign', {
				envelope => {
					tenant_id => $tenant, store_id => $store, source_agent_id => $agent3, agent_key_id => 1,
					entity_type => 'Product', entity_id => "p-$n3", event_type => 'product.updated',
					payload => { n => $n3, price => '1.50', tags => [ 'b', 'a' ], weight => 1.0e2 } },
				seed => $seed3 })->{envelope};
	}
	my $res = $seq->{http}->request('POST', $seq->url('/api/v1/ves/events/ingest'), {
			content => $json->encode({ agentId => $agent3, events => \@envs }),
			headers => { 'content-type' => 'application/json', authorization => 'ApiKey ss_good' } });
	die "ingest: $res->{status} $res->{content}" unless $res->{success};
	my $answer = $json->decode($res->{content});
	die "ingest rejected: $res->{content}" if $answer->{eventsRejected};
	return @envs;
}
sub head { return $seq->call("GET", "/_events?tenant_id=$tenant&store_id=$store")->{head}; }
sub status
{
	return sql(qq{SELECT cursor || '|' || head || '|' || applied || '|' || duplicates || '|' || stopped
	              FROM ves.pull_status WHERE source = 'src'});
}
sub cursor_at
{
	my ($n) = @_;
	return wait_until(60, sub { (sql(q{SELECT cursor FROM ves.pull_status WHERE source = 'src'}) || 0) == $n });
}
sub stored { return sql("SELECT count(*) FROM ves.events WHERE event_id = '$_[0]'"); }

# --- own events pushed, a third agent's sequenced after them ----------------------

sql("SELECT ves.create_destination('push', 'ves_sequencer', '$base',
       '{\"secret\": \"ss_good\", \"entity_types\": [\"Order\"], \"sequencer_public_key\": \"$sequencer_key\"}')");
my @own = split /\n/, sql(
	"SELECT (ves.append('$tenant', '$store', 'Order', 'o-1', 'order.updated', jsonb_build_object('step', g))).event_id
	 FROM generate_series(1, 3) g");
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.outbox WHERE status <> 'synced'}) == 0 }),
	'this node\'s three events are pushed');
my @third = third_events(3);
is(head(), 6, 'the sequencer holds the stream 1..6');

# The source: the same stream, pulled every 200 ms two at a time. It takes
# no events to push (entity type "none").
sql("SELECT ves.create_destination('src', 'ves_sequencer', '$base',
       '{\"secret\": \"ss_good\", \"sequencer_public_key\": \"$sequencer_key\", \"pull\": true,
         \"tenant_id\": \"$tenant\", \"store_id\": \"$store\", \"pull_interval_ms\": 200, \"pull_batch\": 2,
         \"entity_types\": [\"none\"]}')");
ok(cursor_at(7), 'the worker pulls the stream to its head') or diag status();
is(status(), '7|6|3|3|false', 'three events applied, this node\'s three are duplicates');
is(sql("SELECT count(*) FROM ves.events WHERE tenant_id = '$tenant' AND entity_type <> 'sync'"), 6,
	'nothing was stored twice');
# Each pull that applied events announced itself on the source's sync
# stream: a sync.started and sync.completed pair per run, together counting
# the three events applied.
my ($started, $completed, $runs, $applied) = split /\|/, sql(q{
	SELECT count(*) FILTER (WHERE event_type = 'sync.started') || '|'
	       || count(*) FILTER (WHERE event_type = 'sync.completed') || '|' || count(DISTINCT payload ->> 'run') || '|'
	       || coalesce(sum((payload ->> 'applied')::int), 0)
	FROM ves.events WHERE event_type LIKE 'sync.%'});
ok($started >= 1 && $completed == $started && $runs == $started,
	"the pulls that applied events appended sync.started and sync.completed pairs ($started, $completed, $runs runs)");
is($applied, 3, 'their sync.completed count the three events applied');
is(sql(qq{SELECT count(*) FROM ves.events WHERE event_type LIKE 'sync.%'
          AND NOT (entity_type = 'sync' AND entity_id = 'src' AND tenant_id = '$tenant' AND store_id = '$store')}), 0,
	'on the sync stream of the source\'s tenant, never on an entity\'s');
for my $env (@third)
{
	my $id = $env->{event_id};
	my $got = $json->decode(sql("SELECT ves.export_event('$id')"));
	is_deeply([ @$got{qw(agent_signature payload_plain_hash source_agent_id created_at entity_id)} ],
		[ @$env{qw(agent_signature payload_plain_hash source_agent_id created_at entity_id)} ],
		"$id is stored as signed");
	is_deeply($got->{payload}, $env->{payload}, 'with the same payload');
	is(sql("SELECT ves.verify_event('$id')"), 't', 'and verifies');
}
is(sql(q{SELECT string_agg(r.sequence_number::text, ',' ORDER BY r.sequence_number) FROM ves.sequencer_receipts r
         JOIN ves.destinations d ON d.id = r.destination_id WHERE d.name = 'src' AND r.signature_verified}),
	'1,2,3,4,5,6', 'every pulled event\'s receipt is kept, its signature verified');

# --- a read that leaves a number out heals on the next pull -----------------------

# The read from 7 (two at a time) serves 8 alone.
$seq->call('POST', '/_faults', { kind => 'gap', seq => 7, tenant_id => $tenant, store_id => $store });
my @more = third_events(3);    # 7, 8, 9
ok(cursor_at(10), 'a number left out of one read is pulled by the next') or diag status();
is(sql(q{SELECT gaps::text || '|' || last_gap FROM ves.pull_cursors}), '1|hole: sequence number 7 is missing (the page went on at 8)',
	'the hole is recorded');
is(sql(q{SELECT count(*) FROM ves.security_alerts}), 0, 'and raises no alert');
is(stored($more[0]{event_id}), 1, 'the event that was left out is stored');

# --- a number the sequencer skipped: an operator decides ------------------------

$seq->call('POST', '/_faults', { kind => 'skip', tenant_id => $tenant, store_id => $store });
my @after_skip = third_events(2);    # 11, 12: 10 never exists
is(head(), 12, 'the sequencer skipped 10');
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.security_alerts WHERE kind = 'pulled_sequence_gap'}) == 1 }),
	'a number missing pull after pull raises an alert') or diag status();
is(sql(q{SELECT source || '|' || sequence_number || '|' || tenant_id FROM ves.security_alerts WHERE kind = 'pulled_sequence_gap'}),
	"src|10|$tenant", 'for the source, at the missing number');
# The head is the highest number a read showed (reads from 10 show 11).
is(status(), '10|11|6|3|true', 'the stream is held at 10; nothing after it is applied');
is(stored($after_skip[0]{event_id}), 0, 'the event after the hole is not stored');
my $gap_alert = sql(q{SELECT id FROM ves.security_alerts WHERE kind = 'pulled_sequence_gap'});
sql("SELECT ves.acknowledge_security_alert($gap_alert, action => 'skip')");
ok(cursor_at(13), 'skipping the number resumes the stream after it') or diag status();
is(sql(q{SELECT arguments ->> 'sequence_number' FROM ves.audit_log WHERE action = 'skip_pulled_event'}), 10,
	'the skip is in the audit log');

# --- forged events stop the stream until an operator acts ---------------------------

$seq->call('POST', '/_faults', { kind => 'forge', how => 'signature', seq => 13, tenant_id => $tenant, store_id => $store });
my @forged = third_events(2);    # 13 (served forged once), 14
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.security_alerts WHERE kind = 'pulled_event_signature'}) == 1 }),
	'a forged signature raises an alert') or diag status();
my ($sig_alert, $sig_row) = split /\n/, sql(qq{SELECT id FROM ves.security_alerts WHERE kind = 'pulled_event_signature';
	SELECT source || '|' || sequence_number || '|' || event_id || '|' || (raw IS NOT NULL) FROM ves.security_alerts
	WHERE kind = 'pulled_event_signature'});
is($sig_row, "src|13|$forged[0]{event_id}|true", 'naming the source, number, event and what was served');
sleep 1;
is(status(), '13|14|8|3|true', 'the stream stops at the forged event');
is(stored($forged[0]{event_id}) + stored($forged[1]{event_id}), 0, 'neither it nor the next is stored');
is(sql(q{SELECT alert_id FROM ves.pull_status WHERE source = 'src'}), $sig_alert, 'the cursor names the alert');
sql("SELECT ves.acknowledge_security_alert($sig_alert, action => 'retry')");
ok(cursor_at(15), '\'retry\' reads it again; served intact, it is applied') or diag status();
is(stored($forged[0]{event_id}), 1, 'the event is stored');

$seq->call('POST', '/_faults', { kind => 'forge', how => 'receipt', seq => 15, tenant_id => $tenant, store_id => $store });
my @bad_receipt = third_events(1);    # 15
ok(wait_until(60, sub { sql(q{SELECT count(*) FROM ves.security_alerts WHERE kind = 'pulled_event_receipt'}) == 1 }),
	'a receipt that does not verify raises an alert') or diag status();
is(stored($bad_receipt[0]{event_id}), 0, 'the event is not stored');
my $receipt_alert = sql(q{SELECT id FROM ves.security_alerts WHERE kind = 'pulled_event_receipt'});
sql("SELECT ves.acknowledge_security_alert($receipt_alert, action => 'retry')");
ok(cursor_at(16), 'and after \'retry\' it is') or diag status();

# --- ves.pull_events --------------------------------------------------------------

sql(q{SELECT ves.alter_destination('src', '{"pull_interval_ms": 86400000}')});
sleep 1;
third_events(1);    # 16
my $r = sql(q{SELECT pulled || '|' || applied || '|' || cursor || '|' || coalesce(stop_reason, '-')
              FROM ves.pull_events('src')});
# The worker may have read it first (it reads at once after a change).
ok($r eq '1|1|17|-' || $r eq '0|0|17|-', "ves.pull_events pulls from the cursor ($r)");
ok(cursor_at(17), 'the cursor is past it');
# A throttled or failing read applies nothing and says why.
$seq->call('POST', '/_faults', { kind => 'throttle', path => '/api/v1/events', times => 1, retry_after => 1 });
my ($ok, $out, $err) = $node->psql('postgres', q{SELECT * FROM ves.pull_events('src')});
like($err, qr/VE067|source "src" could not be read: the sequencer answered HTTP 429/, 'a throttled read raises VE067');
like($err, qr/HTTP 429/, 'naming the answer');
is(sql(q{SELECT cursor FROM ves.pull_status}), 17, 'and moves nothing');

# --- the worker retries failed reads -------------------------------------------------

sub sync_failed { return sql(q{SELECT count(*) FROM ves.events WHERE event_type = 'sync.failed'}); }
is(sync_failed(), 0, 'no read by the worker has failed yet, and the failed ves.pull_events appended nothing');
$seq->call('POST', '/_faults', { kind => '5xx', status => 503, path => '/api/v1/events', times => 2 });
sql(q{SELECT ves.alter_destination('src', '{"pull_interval_ms": 100}')});
third_events(1);    # 17
ok(cursor_at(18), 'after two failed reads (503) the worker reads the event') or diag status();
cmp_ok($seq->call('GET', '/_stats')->{injected}, '>=', 2, 'the reads failed first');
is(sql(q{SELECT coalesce(last_error, 'none') FROM ves.pull_status}), 'none', 'the error is cleared by the read that worked');
is(sync_failed(), 1, 'the failing reads appended one sync.failed, not one per retry');
like(sql(q{SELECT entity_id || '|' || (payload ->> 'kind') || '|' || (payload ->> 'error')
           FROM ves.events WHERE event_type = 'sync.failed'}), qr/^src\|pull\|.*503/,
	'naming the source and the error');

# An idle source, polled every 100 ms, appends no sync event.
my $sync_events = sql(q{SELECT count(*) FROM ves.events WHERE entity_type = 'sync'});
my $polled = sql(q{SELECT last_pull_at FROM ves.pull_cursors});
sleep 3;
ok(sql(qq{SELECT last_pull_at > '$polled' FROM ves.pull_cursors}) eq 't', 'the worker kept polling the idle source');
is(sql(q{SELECT count(*) FROM ves.events WHERE entity_type = 'sync'}), $sync_events,
	'and appended no sync event over 3 seconds');

# --- a slow sequencer holds up no delivery ---------------------------------------------
# Pages are requested on the worker's own HTTP engine beside its deliveries
# and applied once they come. With every read answered 0.8 s late and the
# source polled every 100 ms, a worker that waited for its pages would hold
# every delivery up for most of the time.
my $sink = start_sink();
my $other = '44444444-4444-4444-8444-444444444444';
sql(q{SELECT ves.create_destination('hook', 'webhook', '} . $sink->url('/hook')
	  . qq{', '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "tenant_id": "$other"}')});
$seq->call('POST', '/_faults', { kind => 'delay', delay_ms => 800, path => '/api/v1/events', times => undef });
my $reads_before = scalar grep { $_->{path} =~ m{^/api/v1/events} } @{ $seq->call('GET', '/_log')->{requests} };
check_delivery_waits([ delivery_waits(\&sql, $sink, $other, $store, 30, 'slow-pull') ],
	30, 2, 0.8, 'a page');
my $reads = scalar(grep { $_->{path} =~ m{^/api/v1/events} } @{ $seq->call('GET', '/_log')->{requests} })
  - $reads_before;
cmp_ok($reads, '>=', 2, "the worker read pages meanwhile ($reads)");
my $slow_since = sql(q{SELECT now()});
ok(wait_until(10, sub { sql(qq{SELECT last_pull_at > '$slow_since' FROM ves.pull_cursors}) eq 't' }),
	'and records the pages it reads') or diag status();
$seq->call('POST', '/_faults', { clear => JSON::PP::true });
$sink->stop;

# --- kill -9 of the postmaster in the middle of pulling ------------------------------

sql(q{SELECT ves.alter_destination('src', '{"pull_interval_ms": 50, "pull_batch": 5}')});
sql(q{SELECT ves.pause_destination('src')});
my @many = third_events(150);    # 18..167
sql(q{SELECT ves.resume_destination('src')});
ok(wait_until(60, sub { sql(q{SELECT cursor FROM ves.pull_status}) > 30 }), 'pulling is under way');
my @children = keys %{ children_of(postmaster_pid($node)) };
$node->kill9;
ok(wait_until(60, sub { !grep { kill 0, $_ } @children }), 'the postmaster and its children are gone');
$node->start;
ok(cursor_at(168), 'after the restart the stream is pulled to its head') or diag status();
my $stream = sql(qq{SELECT count(*) FROM ves.events WHERE tenant_id = '$tenant' AND store_id = '$store'
                    AND entity_type <> 'sync'});
is($stream, 6 + 3 + 2 + 2 + 1 + 1 + 1 + 150, 'every event is stored once: none lost, none twice');
is(sql(q{SELECT applied + duplicates FROM ves.pull_cursors}), 167 - 1,
	'the counters, moved with the cursor, count every number but the skipped one');
is(sql(q{SELECT count(*) || '|' || max(r.sequence_number) FROM ves.sequencer_receipts r
         JOIN ves.destinations d ON d.id = r.destination_id WHERE d.name = 'src'}), '166|167',
	'a receipt for every number up to the cursor');
is(stored($many[-1]{event_id}), 1, 'the last event is stored');
# The sync stream agrees with the cursor, the kill -9 notwithstanding: each
# pull's pair was appended with the events it applied, or not at all.
is(sql(q{SELECT count(*) FILTER (WHERE event_type = 'sync.started') = count(*) FILTER (WHERE event_type = 'sync.completed')
              AND count(DISTINCT payload ->> 'run') = count(*) FILTER (WHERE event_type = 'sync.started')
         FROM ves.events WHERE event_type IN ('sync.started', 'sync.completed')}), 't',
	'every pull that applied events has its sync.started and sync.completed');
is(sql(q{SELECT sum((payload ->> 'applied')::bigint) FROM ves.events WHERE event_type = 'sync.completed'}),
	sql(q{SELECT applied FROM ves.pull_cursors}), 'which count every applied event once');

# --- a revoked key: an event sequenced after the revocation is refused -----------------

# Whoever holds a revoked key can sign any date: an event dated before the
# revocation that the sequencer took in after it is refused and alerted on.
sql(qq{SELECT ves.revoke_agent_key('$tenant', '$agent3', 1)});
my $backdated = sql(qq{SELECT to_char((revoked_at - interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                       FROM ves.agent_keys WHERE agent_id = '$agent3' AND key_id = 1});
my $forged = $seq->call('POST', '/_sign', {
		envelope => {
			tenant_id => $tenant, store_id => $store, source_agent_id => $agent3, agent_key_id => 1,
			entity_type => 'Product', entity_id => 'p-backdated', event_type => 'product.updated',
			created_at => $backdated, payload => { n => 0 } },
		seed => $seed3 })->{envelope};
my $res = $seq->{http}->request('POST', $seq->url('/api/v1/ves/events/ingest'), {
		content => $json->encode({ agentId => $agent3, events => [$forged] }),
		headers => { 'content-type' => 'application/json', authorization => 'ApiKey ss_good' } });
ok($res->{success}, 'the sequencer takes in an event signed with the revoked key, dated before the revocation');
ok( wait_until(60, sub { sql(q{SELECT count(*) FROM ves.security_alerts WHERE kind = 'pulled_event_key'}) == 1 }),
	'pulling it raises an alert') or diag status();
like(sql(q{SELECT reason FROM ves.security_alerts WHERE kind = 'pulled_event_key'}),
	qr/^sequenced at \S+, after the key was revoked at \S+: agent $agent3 key 1$/, 'that says it was sequenced after the revocation');
is(stored($forged->{event_id}), 0, 'the event is not stored');

$seq->stop;
done_testing();
