# pg_ves_mcp end to end: the official MCP TypeScript SDK client
# (test/mcp/driver.mjs) drives the server over stdio against a throwaway
# cluster. Its tools and schemas, every tool's result against the SQL verb it
# stands for, a conflict resolved by the id of its event, tool errors with
# pg_ves SQLSTATEs and hints, read-only mode, a tenant, a role without
# privileges, and the server living through a database restart. The raw
# protocol (version negotiation, JSON-RPC errors, EOF) is checked by writing
# lines to the server directly.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $repo = $ENV{PGVES_REPO} or die "PGVES_REPO must name the repository copy\n";
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $server = "$bindir/pg_ves_mcp";
ok(-x $server, 'make install put pg_ves_mcp next to the server programs')
  or BAIL_OUT("no $server: run make install");
my $node_bin = `sh -c 'command -v node'`;
chomp $node_bin;
ok($node_bin && -d "$repo/test/mcp/node_modules/\@modelcontextprotocol/sdk",
	'node and the MCP SDK are installed (scripts/test.sh runs npm ci in test/mcp)')
  or BAIL_OUT('install node and run npm ci in test/mcp');

my $json = JSON::PP->new->canonical;
# PostgreSQL::Test::Utils names every session after the test; pg_ves_mcp's own
# name (its fallback_application_name) shows when nothing else is set.
delete $ENV{PGAPPNAME};
my $tenant = '00000000-0000-0000-0000-0000000000a4';
my $other_tenant = '00000000-0000-0000-0000-0000000000a5';
my $store = '00000000-0000-0000-0000-0000000000b4';

my $node = new_node('mcp');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $conninfo = $node->connstr('postgres');

# A destination on a closed port that gives up after one attempt, and no
# worker: every delivery is a push_events call and ends dead.
sql(q{SELECT ves.create_destination('hook', 'webhook', 'http://127.0.0.1:9/hook',
        '{"max_attempts": 1, "timeout_ms": 2000, "entity_types": ["Order"]}')});
for my $i (1 .. 4)
{
	sql(qq{SELECT ves.append('$tenant', '$store', 'Order', 'o-$i', 'order.created', '{"n": $i}')});
}
sql(qq{SELECT ves.append('$other_tenant', '$store', 'Order', 'x-1', 'order.created', '{}')});
# An open conflict: the same field changed on both sides.
sql(qq{SELECT ves.set_conflict_policy('$tenant', 'product', '{"review_window_ms": 0}')});
sql(qq{SELECT ves.upsert('$tenant', '$store', 'product', 'p1', '{"title": "Mug", "price": 12.5}', NULL, 'manual',
        observed_at => '2026-01-01 10:00:00+00')});
sql(qq{SELECT ves.upsert('$tenant', '$store', 'product', 'p1', '{"title": "Mug", "price": 13}', 1, 'manual',
        observed_at => '2026-01-01 10:01:40+00')});
is( sql(qq{SELECT outcome FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"title": "Mug", "price": 15}', 1,
        'manual', observed_at => '2026-01-01 10:08:20+00')}),
	'conflict', 'setup: an open conflict');
my ($conflict_id, $conflict_event) =
  split /\|/, sql(q{SELECT conflict_id || '|' || event_id FROM ves.conflicts WHERE status = 'open'});

# The driver ------------------------------------------------------------------

# Starts the SDK client on pg_ves_mcp with @args; returns a handle for mcp().
sub start_driver
{
	my (@args) = @_;
	my $d = { in => '', out => '', err => '' };
	$d->{h} = IPC::Run::start([ $node_bin, "$repo/test/mcp/driver.mjs", $server, @args ],
		'<', \$d->{in}, '>', \$d->{out}, '2>', \$d->{err},
		IPC::Run::timeout(180));
	my $hello = next_line($d);
	ok($hello->{connected}, "the SDK client initializes pg_ves_mcp @args")
	  or diag($json->encode($hello), $d->{err});
	return $d;
}

sub next_line
{
	my ($d) = @_;
	$d->{h}->pump while $d->{out} !~ /\n/;
	$d->{out} =~ s/^([^\n]*)\n//;
	return decode_json($1);
}

sub mcp
{
	my ($d, $cmd) = @_;
	$d->{in} .= encode_json($cmd) . "\n";
	return next_line($d);
}

# A tool call's result; fails the test when the call did not reach the tool.
sub call
{
	my ($d, $name, $arguments) = @_;
	my $r = mcp($d, { op => 'call', name => $name, arguments => $arguments // {} });
	diag("$name: $r->{error}") if $r->{error};
	return $r->{result} // {};
}

sub text_of { return join "\n", map { $_->{text} } @{ $_[0]{content} // [] }; }

sub stop_driver
{
	my ($d) = @_;
	# Not EOF: a postmaster restarted meanwhile inherited the write end of
	# the driver's stdin.
	$d->{in} .= qq{{"op": "exit"}\n};
	$d->{h}->finish;
	return $d->{out};
}

my $d = start_driver('--dbname', $conninfo);

# Tools and their schemas --------------------------------------------------------

my $info = mcp($d, { op => 'info' });
is($info->{server}{name}, 'pg_ves_mcp', 'serverInfo names pg_ves_mcp');
ok($info->{capabilities}{tools}, 'capabilities offer tools');

my @write_tools = qw(push_events acknowledge_events resolve_conflict set_sync_settings retry_events);
my @read_tools = qw(get_sync_status pull_events list_outbox_events get_outbox_event get_sync_settings
  list_conflicts get_sync_metrics verify_events);
my %tools = map { $_->{name} => $_ } @{ mcp($d, { op => 'list' })->{tools} };
is_deeply([ sort keys %tools ], [ sort @write_tools, @read_tools ], 'tools/list has the 13 tools');
for my $t (sort keys %tools)
{
	is($tools{$t}{inputSchema}{type}, 'object', "$t has an object inputSchema");
	is($tools{$t}{outputSchema}{type}, 'object', "$t has an object outputSchema");
	ok(length $tools{$t}{description} > 20, "$t is described");
	is($tools{$t}{annotations}{readOnlyHint} ? 1 : 0, (grep { $_ eq $t } @read_tools) ? 1 : 0,
		"$t: readOnlyHint says whether it changes data");
}
my %props = map { $_ => [ sort keys %{ $tools{$_}{inputSchema}{properties} } ] } keys %tools;
is_deeply($props{push_events}, [qw(destination limit)], 'push_events takes limit (and destination)');
is_deeply($props{pull_events}, [qw(limit since)], 'pull_events takes since and limit');
is_deeply($props{list_outbox_events}, [qw(destination limit status)], 'list_outbox_events takes status and limit');
ok((grep { $_ eq 'conflict' } @{ $tools{list_outbox_events}{inputSchema}{properties}{status}{enum} }),
	'list_outbox_events accepts status conflict');
is_deeply($props{resolve_conflict}, [qw(conflictId eventId merged strategy)],
	'resolve_conflict takes eventId or conflictId, strategy and merged');
is_deeply($tools{resolve_conflict}{inputSchema}{required}, ['strategy'], 'resolve_conflict requires strategy');
is_deeply($tools{acknowledge_events}{inputSchema}{required}, ['ids'], 'acknowledge_events requires ids');

# Every tool against its SQL verb ------------------------------------------------

my $r = call($d, 'get_sync_status');
my $s = $r->{structuredContent};
is($s->{pendingCount}, sql(q{SELECT sum(pending) FROM ves.get_sync_status()}),
	'get_sync_status: pendingCount is ves.get_sync_status()\'s pending');
is($s->{pendingCount}, 5, 'get_sync_status: the five orders are pending');
is($s->{lastSyncTime}, undef, 'get_sync_status: no sync yet');
is($s->{openConflicts}, 1, 'get_sync_status: one open conflict');
is($s->{conflicts}[0]{conflict_id}, $conflict_id, 'get_sync_status: lists the conflict');
is($s->{destinations}[0]{destination}, 'hook', 'get_sync_status: per destination rows');
like(text_of($r), qr/5 pending.*1 open conflict/, 'get_sync_status: a short text');

$r = call($d, 'list_outbox_events', { status => 'pending', limit => 50 });
is(join(',', map { $_->{id} } @{ $r->{structuredContent}{events} }),
	sql(q{SELECT string_agg(id::text, ',' ORDER BY event_position, destination_id)
          FROM ves.list_outbox_events('pending', NULL, 50)}),
	'list_outbox_events: the rows ves.list_outbox_events returns');
my @ids = map { $_->{id} } @{ $r->{structuredContent}{events} };
is(scalar @ids, 5, 'list_outbox_events: five pending rows');
is(call($d, 'list_outbox_events', { status => 'pending', limit => 2 })->{structuredContent}{count},
	2, 'list_outbox_events: limit');

$r = call($d, 'get_outbox_event', { id => $ids[0] });
is($r->{structuredContent}{event_id},
	sql(qq{SELECT event_id FROM ves.get_outbox_event($ids[0])}), 'get_outbox_event: the row of that id');
is($r->{structuredContent}{status}, 'pending', 'get_outbox_event: its status');

$r = call($d, 'push_events', { limit => 100 });
is_deeply($r->{structuredContent}, { sent => 5, synced => 0, failed => 0, dead => 5 },
	'push_events: one pass sends the five rows to the closed port, dead after their one attempt');
is(sql(q{SELECT count(*) FROM ves.outbox WHERE status = 'dead'}), 5, 'push_events: the outbox says so');
is(call($d, 'list_outbox_events', { status => 'dead' })->{structuredContent}{count}, 5,
	'list_outbox_events: five dead rows');

$r = call($d, 'acknowledge_events', { ids => [ $ids[0], 999999 ] });
is_deeply($r->{structuredContent}, { acknowledged => 1, requested => 2 },
	'acknowledge_events: closes the dead row, ignores an unknown id');
is(sql(qq{SELECT status FROM ves.outbox WHERE id = $ids[0]}), 'acknowledged', 'acknowledge_events: the row is acknowledged');

$r = call($d, 'retry_events', { ids => [ $ids[1] ] });
is($r->{structuredContent}{retried}, 1, 'retry_events: one row');
is(sql(qq{SELECT status || ' ' || attempts FROM ves.outbox WHERE id = $ids[1]}), 'pending 0',
	'retry_events: pending again from the first attempt');

$r = call($d, 'list_outbox_events', { status => 'conflict', limit => 50 });
ok(!$r->{isError}, 'list_outbox_events: status conflict is accepted');
is($r->{structuredContent}{count}, 0, 'list_outbox_events: no outbox row is in conflict');
is($r->{structuredContent}{status}, 'conflict', 'list_outbox_events: an outbox status like the others');

$r = call($d, 'pull_events', { limit => 3 });
is(join(',', map { $_->{event_id} } @{ $r->{structuredContent}{events} }),
	sql(q{SELECT string_agg(event_id::text, ',' ORDER BY position) FROM ves.read_all(0, 3)}),
	'pull_events: the first events ves.read_all returns');
my $last = $r->{structuredContent}{lastEventId};
my $last_pos = $r->{structuredContent}{lastPosition};
$r = call($d, 'pull_events', { since => $last, limit => 100 });
is(join(',', map { $_->{event_id} } @{ $r->{structuredContent}{events} }),
	sql(qq{SELECT string_agg(event_id::text, ',' ORDER BY position) FROM ves.read_all($last_pos, 100)}),
	'pull_events since an event id: the events after it');
is($r->{structuredContent}{afterPosition}, $last_pos, 'pull_events: since resolved to its position');
is(call($d, 'pull_events', { since => "$last_pos", limit => 1 })->{structuredContent}{events}[0]{event_id},
	$r->{structuredContent}{events}[0]{event_id}, 'pull_events: since may be a position');

$r = call($d, 'get_sync_settings');
is_deeply($r->{structuredContent}{settings}, decode_json(sql(q{SELECT ves.get_sync_settings()})),
	'get_sync_settings: ves.get_sync_settings()');
$r = call($d, 'set_sync_settings', { settings => { window => 128 } });
is($r->{structuredContent}{settings}{window}, 128, 'set_sync_settings: returns the merged settings');
is(sql(q{SELECT ves.get_sync_settings() ->> 'window'}), 128, 'set_sync_settings: stored');

$r = call($d, 'list_conflicts');
is($r->{structuredContent}{count}, 1, 'list_conflicts: one');
is($r->{structuredContent}{conflicts}[0]{conflict_id}, $conflict_id, 'list_conflicts: ves.open_conflicts');
is($r->{structuredContent}{conflicts}[0]{event_id}, $conflict_event, 'list_conflicts: with its event id');
is_deeply($r->{structuredContent}{conflicts}[0]{fields}, ['price'], 'list_conflicts: the field in conflict');

$r = call($d, 'resolve_conflict', { eventId => $conflict_event, strategy => 'accept_remote' });
ok(!$r->{isError}, 'resolve_conflict by eventId') or diag(text_of($r));
is($r->{structuredContent}{conflictId}, $conflict_id, 'resolve_conflict: eventId found the conflict');
is($r->{structuredContent}{matchedBy}, 'eventId', 'resolve_conflict: says how');
is(sql(qq{SELECT status || ' ' || strategy FROM ves.conflicts WHERE conflict_id = '$conflict_id'}),
	'resolved accept_remote', 'resolve_conflict: resolved with the strategy');
is(sql(qq{SELECT state ->> 'price' FROM ves.entity_state WHERE entity_id = 'p1'}), 15,
	'resolve_conflict: accept_remote applied the remote price');
$r = call($d, 'resolve_conflict', { conflictId => $conflict_id, strategy => 'accept_local' });
ok($r->{isError}, 'resolve_conflict twice: a tool error');
like(text_of($r), qr/^ERROR VE030: conflict .* is already resolved\nDETAIL: .*\nHINT: /,
	'resolve_conflict twice: pg_ves SQLSTATE, detail and hint');
$r = call($d, 'resolve_conflict', { eventId => $conflict_event, strategy => 'accept_local' });
like(text_of($r), qr/no open conflict belongs to event/, 'resolve_conflict by the eventId of a resolved one: a tool error');

$r = call($d, 'get_sync_metrics');
is($r->{structuredContent}{outbox}{dead}, sql(q{SELECT sum(dead) FROM ves.get_sync_status()}),
	'get_sync_metrics: dead rows as ves.get_sync_status counts them');
is($r->{structuredContent}{conflicts}{open}, 0, 'get_sync_metrics: no open conflict left');
is($r->{structuredContent}{destinations}{total}, 1, 'get_sync_metrics: one destination');

# A database that is also a sequencer: ves.get_sync_status() adds a row per
# stream, which the tools keep out of the destinations and their counts.
sql(q{SELECT ves.sequence_events((x.env->>'source_agent_id')::uuid, jsonb_build_array(x.env))
      FROM (SELECT ves.export_event(e.event_id) AS env FROM ves.events e ORDER BY e.position LIMIT 1) x});
is(sql(q{SELECT count(*) FROM ves.get_sync_status() WHERE kind = 'sequencer'}), 1, 'this database sequences one stream');
$r = call($d, 'get_sync_metrics');
is($r->{structuredContent}{destinations}{total}, 1, 'get_sync_metrics: still one destination');
$r = call($d, 'get_sync_status');
is_deeply([ map { $_->{destination} } @{ $r->{structuredContent}{destinations} } ], ['hook'],
	'get_sync_status: its destinations are the destinations only');

$r = call($d, 'verify_events', {});
ok($r->{structuredContent}{ok}, 'verify_events: every event verifies');
is($r->{structuredContent}{failureCount}, 0, 'verify_events: no failure listed');
$r = call($d, 'verify_events', { tenantId => $tenant, fromPosition => 1 });
ok($r->{structuredContent}{ok}, 'verify_events: with a range');

# Errors ----------------------------------------------------------------------------

$r = call($d, 'get_outbox_event', { id => 999999 });
ok($r->{isError}, 'get_outbox_event of an unknown id: a tool error');
is(text_of($r), "ERROR VE012: outbox row 999999 does not exist\nHINT: List rows with ves.list_outbox_events().",
	'get_outbox_event: the pg_ves SQLSTATE, message and hint');
$r = call($d, 'set_sync_settings', { settings => { window => 0 } });
like(text_of($r), qr/^ERROR VE010: sync setting "window" must be a whole number between 1 and 4096\nHINT: /,
	'set_sync_settings out of range: VE010 with its hint');
for my $bad (
	[ push_events => { limit => 'many' }, qr/arguments\.limit must be of type integer/ ],
	[ push_events => { limit => 0 }, qr/arguments\.limit must be at least 1/ ],
	[ push_events => { lmit => 5 }, qr/unknown property "lmit"/ ],
	[ acknowledge_events => {}, qr/arguments\.ids is required/ ],
	[ acknowledge_events => { ids => [ 1.5 ] }, qr/arguments\.ids\[0\] must be of type integer/ ],
	[ resolve_conflict => { strategy => 'accept_local' }, qr/exactly one of conflictId or eventId/ ],
	[ resolve_conflict => { conflictId => $conflict_id, eventId => $conflict_event, strategy => 'merge' },
		qr/exactly one of conflictId or eventId/ ],
	[ resolve_conflict => { eventId => 'nope', strategy => 'accept_local' }, qr/eventId must be a UUID/ ],
	[ resolve_conflict => { conflictId => $conflict_id, strategy => 'coin_flip' },
		qr/strategy must be one of "accept_local"/ ],
	[ list_outbox_events => { status => 'lost' }, qr/status must be one of/ ],
	[ pull_events => { since => 'yesterday' }, qr/since must be an event id/ ],
	[ pull_events => { since => '00000000-0000-0000-0000-000000000000' }, qr/no event .* is visible/ ])
{
	my ($tool, $args, $want) = @$bad;
	$r = call($d, $tool, $args);
	ok($r->{isError}, "$tool " . encode_json($args) . ': a tool error');
	like(text_of($r), $want, "$tool " . encode_json($args) . ': says what is wrong');
}
$r = mcp($d, { op => 'call', name => 'drop_everything', arguments => {} });
is($r->{code}, -32602, 'an unknown tool: JSON-RPC error -32602');
is(mcp($d, { op => 'ping' })->{error}, undef, 'the server still answers');

# Cancellation -------------------------------------------------------------------

# A call that waits on a lock past the client's timeout: the SDK sends
# notifications/cancelled, and pg_ves_mcp cancels the statement and serves
# the next request while the lock is still held.
my ($lock_out, $lock_err) = ('', '');
my $locker = IPC::Run::start(
	[ 'psql', '-X', '-d', $conninfo, '-c', 'BEGIN; LOCK TABLE ves.sync_settings; SELECT pg_sleep(120)' ],
	'>', \$lock_out, '2>', \$lock_err);
ok( wait_until(30, sub {
			sql(q{SELECT count(*) FROM pg_locks WHERE relation = 'ves.sync_settings'::regclass
                  AND mode = 'AccessExclusiveLock' AND granted}) == 1;
		}),
	'setup: another session locks ves.sync_settings');
$r = mcp($d, { op => 'call', name => 'get_sync_settings', arguments => {}, timeout => 1000 });
is($r->{code}, -32001, 'a call waiting past the client\'s timeout: the SDK gives up and cancels it');
ok( wait_until(30, sub {
			sql(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_ves_mcp'
                  AND wait_event_type = 'Lock'}) == 0;
		}),
	'pg_ves_mcp no longer waits for the lock');
like(slurp_file($node->logfile), qr/canceling statement due to user request/,
	'because it cancelled the statement');
is(mcp($d, { op => 'ping' })->{error}, undef, 'it answers the next request while the lock is held');
is(call($d, 'get_sync_status')->{structuredContent}{openConflicts}, 0, 'and runs the next tool call');
sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()});
$locker->finish;
is(call($d, 'get_sync_settings')->{structuredContent}{settings}{window}, 128, 'with the lock gone, get_sync_settings answers');

# A database restart -------------------------------------------------------------

$node->restart;
$r = call($d, 'get_sync_status');
ok(!$r->{isError}, 'after a database restart the next call reconnects') or diag(text_of($r));
is($r->{structuredContent}{deadCount}, sql(q{SELECT sum(dead) FROM ves.get_sync_status()}),
	'and answers from the restarted database');
is(sql(q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_ves_mcp'}), 1,
	'pg_ves_mcp has one session, named by application_name');
sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_ves_mcp'});
ok(!call($d, 'list_conflicts')->{isError}, 'a terminated session is replaced on the next call');
$node->stop;
$r = call($d, 'get_sync_status');
ok($r->{isError}, 'with the database down: a tool error');
like(text_of($r), qr/^ERROR 08001: could not connect/, 'with SQLSTATE 08001');
$node->start;
ok(!call($d, 'get_sync_status')->{isError}, 'with the database back: answers again');
like(stop_driver($d), qr/\{"closed":true\}/, 'the client closes the server');

# Read-only mode -------------------------------------------------------------------

my $ro = start_driver('--dbname', $conninfo, '--read-only');
is_deeply([ sort map { $_->{name} } @{ mcp($ro, { op => 'list' })->{tools} } ], [ sort @read_tools ],
	'--read-only lists only the tools that change nothing');
for my $t (@write_tools)
{
	$r = mcp($ro, { op => 'call', name => $t, arguments => {} });
	is($r->{code}, -32602, "--read-only refuses $t");
}
like(mcp($ro, { op => 'call', name => 'push_events', arguments => {} })->{error}, qr/--read-only/,
	'--read-only says why');
ok(!call($ro, 'get_sync_status')->{isError}, '--read-only serves get_sync_status');
is(sql(q{SELECT ves.get_sync_settings() ->> 'window'}), 128, '--read-only changed nothing');
stop_driver($ro);

# A tenant, and a role without the admin verbs ------------------------------------------

my $t = start_driver('--dbname', $conninfo, '--tenant', $other_tenant);
$r = call($t, 'list_outbox_events', { limit => 100 });
is_deeply([ map { $_->{tenant_id} } @{ $r->{structuredContent}{events} } ], [$other_tenant],
	'--tenant: only the tenant\'s outbox rows');
# The tenant's order, and the sync.failed its dead row appended on its sync stream.
my $pulled = call($t, 'pull_events', {})->{structuredContent};
is($pulled->{count}, sql(qq{SELECT count(*) FROM ves.events WHERE tenant_id = '$other_tenant'}),
	'--tenant: as many events as the tenant has');
is_deeply([ sort map { "$_->{tenant_id} $_->{entity_type}" } @{ $pulled->{events} } ],
	[ "$other_tenant Order", "$other_tenant sync" ], '--tenant: only the tenant\'s events');
stop_driver($t);

sql(q{CREATE ROLE mcp_reader LOGIN IN ROLE ves_reader});
my $reader = start_driver('--dbname', "$conninfo user=mcp_reader", '--tenant', $tenant);
$r = call($reader, 'get_sync_status');
ok($r->{isError}, 'a ves_reader role: get_sync_status is a tool error');
like(text_of($r), qr/^ERROR 42501: permission denied for function get_sync_status/,
	'with the SQLSTATE PostgreSQL gave');
ok(!call($reader, 'pull_events', {})->{isError}, 'a ves_reader role may pull events');
ok(!call($reader, 'list_conflicts', {})->{isError}, 'a ves_reader role may list conflicts');
ok(!call($reader, 'verify_events', {})->{isError}, 'a ves_reader role may verify events');
stop_driver($reader);

# The raw protocol ---------------------------------------------------------------

sub raw
{
	my (@lines) = @_;
	my $in = join '', map { "$_\n" } @lines;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $server, '--dbname', $conninfo ], \$in, \$out, \$err, IPC::Run::timeout(60));
	return ($ok, [ map { decode_json($_) } split /\n/, $out ]);
}
my $init = sub {
	encode_json({ jsonrpc => '2.0', id => $_[0], method => 'initialize',
		params => { protocolVersion => $_[1], capabilities => {}, clientInfo => { name => 't', version => '1' } } });
};
my ($ok, $replies) = raw(
	$init->(1, '2024-11-05'),
	$init->(2, '2025-03-26'),
	$init->(3, '2025-06-18'),
	$init->(4, '1999-01-01'),
	'{"jsonrpc": "2.0", "method": "notifications/initialized"}',
	'{"jsonrpc": "2.0", "id": 5, "method": "ping"}',
	'this is not json',
	'{"jsonrpc": "2.0", "id": "six", "method": "resources/list"}',
	'{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "nope"}}',
	'{"id": 8, "method": "ping"}',
	'[{"jsonrpc": "2.0", "id": 9, "method": "ping"}, {"jsonrpc": "2.0", "method": "notifications/x"}]');
ok($ok, 'pg_ves_mcp exits 0 at the end of its input');
is(scalar @$replies, 10, 'one reply per request, none for notifications');
is_deeply([ map { $_->{result}{protocolVersion} } @$replies[ 0 .. 3 ] ],
	[qw(2024-11-05 2025-03-26 2025-06-18 2025-06-18)],
	'initialize answers with the client\'s version when supported, else the newest');
is_deeply($replies->[4], { jsonrpc => '2.0', id => 5, result => {} }, 'ping');
is($replies->[5]{error}{code}, -32700, 'a line that is not JSON: -32700');
is($replies->[5]{id}, undef, 'with id null');
is_deeply([ $replies->[6]{id}, $replies->[6]{error}{code} ], [ 'six', -32601 ], 'an unknown method: -32601');
is($replies->[7]{error}{code}, -32602, 'an unknown tool: -32602');
is($replies->[8]{error}{code}, -32600, 'no jsonrpc member: -32600');
is_deeply($replies->[9], [ { jsonrpc => '2.0', id => 9, result => {} } ], 'a batch gets a batch reply');

done_testing();
