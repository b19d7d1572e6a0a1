# How the sync worker handles destinations that fail: transient errors (5xx,
# timeouts, connection resets) are retried with backoff until they succeed
# or run out of attempts; 429 with Retry-After holds the destination back;
# other 4xx are dead at once; 410 pauses the destination until an operator
# resumes it; a destination that keeps failing trips its circuit breaker and
# is left alone while others flow; operators retry or acknowledge what is
# left. Per (destination, entity) order holds throughout.
#
# Each scenario has its own destination (its own path on one sink) and its
# own entity type, which the destination's filter selects.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use PgVesTest;

my $node = new_node('worker_retries');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'the sync worker runs');
sql(q{SELECT ves.set_sync_settings('{"lease_seconds": 5}')});

my $tenant = '00000000-0000-0000-0000-0000000000c1';
my $store = '00000000-0000-0000-0000-0000000000d1';

# A webhook destination at /$name that receives the events of entity type
# $type only; $options (JSON members) come on top.
sub destination
{
	my ($name, $type, $options) = @_;
	$options = $options ? ", $options" : '';
	sql("SELECT ves.create_destination('$name', 'webhook', '" . $sink->url("/$name")
		  . "', '{\"entity_types\": [\"$type\"]$options}')");
}

# Appends one event per [$type, $entity_id] in one transaction; returns their
# event ids.
sub append
{
	my @events = @_;
	my $sql = join ' UNION ALL ', map {
		"SELECT $_ AS i, event_id FROM ves.append('$tenant', '$store', '$events[$_][0]', '$events[$_][1]', 'x.changed', '{}')"
	} 0 .. $#events;
	return split /\n/, sql("SELECT event_id FROM ($sql) a ORDER BY i");
}

# The id of event $id's outbox row at destination $name.
sub outbox_id
{
	my ($name, $id) = @_;
	return sql(qq{SELECT o.id FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                  WHERE d.name = '$name' AND o.event_id = '$id'});
}

# That row as operators see it (ves.get_outbox_event): "status|attempts|last_status".
sub row
{
	my $oid = outbox_id(@_);
	return sql(qq{SELECT status || '|' || attempts || '|' || coalesce(last_status::text, '')
                  FROM ves.get_outbox_event($oid)});
}

sub field
{
	my ($name, $id, $column) = @_;
	my $oid = outbox_id($name, $id);
	return sql("SELECT $column FROM ves.get_outbox_event($oid)");
}

sub wait_row
{
	my ($name, $id, $want, $seconds) = @_;
	return wait_until($seconds // 20, sub { row($name, $id) =~ $want });
}

# Requests at /$name for event $id (the webhook-id), oldest first.
sub requests_for
{
	my ($name, $id) = @_;
	return grep { ($_->{headers}{'webhook-id'} // '') eq $id } $sink->requests("/$name");
}

sub status_of
{
	my ($name, $columns) = @_;
	return sql("SELECT $columns FROM ves.get_sync_status() WHERE destination = '$name'");
}

# --- 500 three times, then 200 --------------------------------------------------

destination('flaky', 'Flaky', '"backoff_base_ms": 400, "jitter": 0');
$sink->control(path => '/flaky', mode => 'status', status => 500, times => 3);
my ($flaky) = append([ 'Flaky', 'f-1' ]);
ok(wait_row('flaky', $flaky, qr/^failed\|\d+\|500$/, 10), '500: the row is failed, last_status 500, between attempts');
like(field('flaky', $flaky, 'last_error'), qr/500/, '500: last_error names the status');
ok(wait_row('flaky', $flaky, qr/^synced\|/, 20), '500 x3: the row is synced in the end');
is(row('flaky', $flaky), 'synced|4|200', '500 x3: four attempts, last_status 200');
my @r = requests_for('flaky', $flaky);
is_deeply([ map { $_->{status} } @r ], [ 500, 500, 500, 200 ], '500 x3: the sink answered 500, 500, 500, 200');
is(scalar(grep { $_->{body} ne $r[0]{body} } @r), 0, '500 x3: every attempt carried the same body');
my @gaps = map { $r[$_]{time} - $r[ $_ - 1 ]{time} } 1 .. $#r;
ok($gaps[0] >= 0.38 && $gaps[1] >= 0.78 && $gaps[2] >= 1.58,
	sprintf('500 x3: backoff doubles from backoff_base_ms (gaps %.2f, %.2f, %.2f s; at least 0.4, 0.8, 1.6)', @gaps));

# --- max_attempts: dead after the last one; the entity waits, others flow ------

destination('maxatt', 'Max', '"max_attempts": 3, "backoff_base_ms": 1500, "jitter": 0');
$sink->control(path => '/maxatt', mode => 'status', status => 500, times => 1);
my ($e1, $e2) = append([ 'Max', 'e' ], [ 'Max', 'e' ]);
ok($sink->wait_for(1, '/maxatt', 10), 'max_attempts: the first event of entity e was tried');
# Entity e's first event now waits 1.5 s for its next attempt; events of
# other entities go meanwhile.
my ($f1, $f2) = append([ 'Max', 'f' ], [ 'Max', 'g' ]);
ok($sink->wait_for(3, '/maxatt', 5), 'max_attempts: events of other entities were sent meanwhile');
$sink->control(path => '/maxatt', mode => 'status', status => 500, times => 2);
ok(wait_row('maxatt', $e1, qr/^dead\|/, 15), 'max_attempts: the failing event ends dead');
is(row('maxatt', $e1), 'dead|3|500', 'max_attempts: dead after 3 attempts, last_status 500');
like(field('maxatt', $e1, 'last_error'), qr/500.*3 attempts/, 'max_attempts: last_error says why');
ok(wait_row('maxatt', $e2, qr/^synced\|1\|200$/, 10), 'max_attempts: the entity\'s next event is delivered afterwards');
my @seq_e1 = map { $_->{seq} } requests_for('maxatt', $e1);
my ($seq_e2) = map { $_->{seq} } requests_for('maxatt', $e2);
my @seq_f = map { $_->{seq} } map { requests_for('maxatt', $_) } $f1, $f2;
is(scalar(@seq_e1), 3, 'max_attempts: the sink saw exactly 3 attempts');
ok($seq_e2 > $seq_e1[2], 'max_attempts: entity e\'s second event was only sent after its first was dead');
ok(@seq_f == 2 && $seq_f[0] > $seq_e1[0] && $seq_f[1] < $seq_e1[1],
	'max_attempts: other entities\' events were sent while e\'s first event waited for its retries');
is(row('maxatt', $_), 'synced|1|200', 'max_attempts: other entity delivered once') for $f1, $f2;
is(status_of('maxatt', q{synced || '|' || dead || '|' || failed || '|' || pending}), '3|1|0|0',
	'max_attempts: get_sync_status counts 3 synced and 1 dead');

# --- 429 with Retry-After holds the destination back ------------------------------

destination('throttle', 'Thr', '"concurrency": 1, "backoff_base_ms": 100, "jitter": 0');
$sink->control(path => '/throttle', mode => 'status', status => 429, retry_after => '2', times => 1);
my @thr = append(map { [ 'Thr', "t-$_" ] } 1 .. 3);
ok($sink->wait_for(4, '/throttle', 15), '429: all three events arrive in the end');
my @tr = $sink->requests('/throttle');
is($tr[0]{status}, 429, '429: the first request was throttled');
my $pause = $tr[1]{time} - $tr[0]{time};
cmp_ok($pause, '>=', 1.95, sprintf('429: no request to the destination for Retry-After seconds (next after %.2f s)', $pause));
ok(wait_until(10, sub { !grep { row('throttle', $_) !~ /^synced/ } @thr }), '429: every row is synced');
is(row('throttle', $tr[0]{headers}{'webhook-id'}), 'synced|2|200', '429: the throttled event took two attempts');

# --- rate_limit: a token bucket per destination ---------------------------------------

destination('rated', 'Rate', '"rate_limit": 20, "burst": 1');
append(map { [ 'Rate', "q-$_" ] } 1 .. 30);
ok($sink->wait_for(30, '/rated', 15), 'rate_limit: all 30 events arrive');
my @rt = map { $_->{time} } $sink->requests('/rated');
my $busiest = 0;
for my $i (0 .. $#rt)
{
	my $n = grep { $_ >= $rt[$i] && $_ < $rt[$i] + 1 } @rt;
	$busiest = $n if $n > $busiest;
}
cmp_ok($busiest, '<=', 21, "rate_limit: at most 20 requests a second, plus the burst (busiest second: $busiest)");
cmp_ok($rt[-1] - $rt[0], '>=', 1.3, sprintf('rate_limit: 30 requests took %.2f s at 20 a second', $rt[-1] - $rt[0]));

# --- 400 is permanent ---------------------------------------------------------------

destination('reject', 'Rej', '"backoff_base_ms": 100');
$sink->control(path => '/reject', mode => 'status', status => 400, times => 1);
my ($r1, $r2) = append([ 'Rej', 'r' ], [ 'Rej', 'r' ]);
ok(wait_row('reject', $r1, qr/^dead\|/, 10), '400: the row is dead');
is(row('reject', $r1), 'dead|1|400', '400: dead at the first attempt, last_status 400');
ok(wait_row('reject', $r2, qr/^synced\|1\|200$/, 10), '400: the entity\'s next event still goes');
usleep(500_000);
is(scalar(requests_for('reject', $r1)), 1, '400: the rejected event was sent once, never retried');

# --- a timeout and a connection reset are retried ----------------------------------

destination('hang', 'Hang', '"timeout_ms": 500, "backoff_base_ms": 1000, "jitter": 0');
$sink->control(path => '/hang', mode => 'hang', delay_ms => 5000, times => 1);
my ($h1) = append([ 'Hang', 'h' ]);
ok(wait_row('hang', $h1, qr/^failed\|1\|$/, 10), 'timeout: after the timeout the row is failed, with no HTTP status');
like(field('hang', $h1, 'last_error'), qr/time/i, 'timeout: last_error says it timed out');
ok(wait_row('hang', $h1, qr/^synced\|2\|200$/, 10), 'timeout: delivered at the second attempt');
my @hr = requests_for('hang', $h1);
ok(@hr == 2 && $hr[1]{time} - $hr[0]{time} >= 0.5 + 0.95,
	'timeout: the retry came after timeout_ms plus the backoff');

# libcurl itself resends once, at once, a request whose reused keep-alive
# connection died before any answer; a second reset (on a fresh connection)
# is what reaches the worker, which retries after its backoff.
destination('reset', 'Reset', '"backoff_base_ms": 1000, "jitter": 0');
$sink->control(path => '/reset', mode => 'reset', times => 2);
my ($x1) = append([ 'Reset', 'x' ]);
ok(wait_row('reset', $x1, qr/^failed\|1\|$/, 10), 'reset: a connection reset leaves the row failed, with no HTTP status');
isnt(field('reset', $x1, 'last_error'), '', 'reset: last_error holds the transport error');
ok(wait_row('reset', $x1, qr/^synced\|\d+\|200$/, 10), 'reset: delivered after the worker retried');
my @xr = requests_for('reset', $x1);
is_deeply([ map { $_->{mode} } @xr ], [ 'reset', 'reset', 'ok' ], 'reset: the sink reset twice, then answered');
cmp_ok(field('reset', $x1, 'attempts'), '>=', 2, 'reset: the worker counted the failed attempt');

# --- 410 pauses the destination --------------------------------------------------------

destination('gone', 'Gone', '"concurrency": 1, "backoff_base_ms": 100');
$sink->control(path => '/gone', mode => 'status', status => 410, times => 1);
my @gone = append(map { [ 'Gone', "g-$_" ] } 1 .. 4);
ok(wait_until(10, sub { sql(q{SELECT paused FROM ves.destinations WHERE name = 'gone'}) eq 't' }),
	'410: the destination is paused');
like(sql(q{SELECT paused_reason FROM ves.destinations WHERE name = 'gone'}), qr/410/, '410: paused_reason names the 410');
is(status_of('gone', 'paused'), 't', '410: get_sync_status shows it paused');
my ($gone_id) = map { $_->{headers}{'webhook-id'} } $sink->requests('/gone');
is(row('gone', $gone_id), 'dead|1|410', '410: the answered row is dead');
my @more_gone = append(map { [ 'Gone', "g-$_" ] } 5 .. 6);
my $sent_gone = scalar $sink->requests('/gone');
sleep 3;
is(scalar($sink->requests('/gone')), $sent_gone, '410: nothing more is sent to a paused destination');
sql(q{SELECT ves.resume_destination('gone')});
is(status_of('gone', 'paused'), 'f', 'resume_destination: no longer paused');
my @open = grep { $_ ne $gone_id } @gone, @more_gone;
ok(wait_until(20, sub { !grep { row('gone', $_) !~ /^synced/ } @open }),
	'resume_destination: every event but the dead one is delivered')
  or diag(join "\n", map { "$_: " . row('gone', $_) } @open);
is(scalar(grep { $_ ne $gone_id } map { $_->{headers}{'webhook-id'} } $sink->requests('/gone')),
	scalar(@open), 'resume_destination: each of them once');

# --- the circuit breaker --------------------------------------------------------------

# Retries every 200 ms per row at most: without a breaker, ten failing rows
# would make ~50 requests a second.
my $breaker_options =
  '"breaker_threshold": 3, "breaker_cooldown_ms": 3000, "max_attempts": 1000, "backoff_base_ms": 50, "backoff_cap_ms": 200, "jitter": 0';

# Trips the breaker of destination $name (receiving entity type $type) with
# the sink answering $status, checks that it stops sending while open and
# that $healthy (if any) keeps receiving, then lets the sink recover and
# checks that the backlog drains and the breaker closes.
sub breaker_scenario
{
	my ($name, $type, $status, $healthy) = @_;
	$sink->control(path => "/$name", mode => 'status', status => $status);
	my @ids = append(map { [ $type, "b-$_" ] } 1 .. 10);
	ok(wait_until(10, sub { status_of($name, 'breaker') eq 'open' }),
		"breaker ($status): get_sync_status shows the failing destination's breaker open");
	my $before = scalar $sink->requests("/$name");
	my $healthy_before = $healthy ? scalar $sink->requests("/$healthy") : 0;
	my $t0 = time;
	push @ids, append(map { [ $type, "c-$_" ] } 1 .. 5);
	ok($sink->wait_for($healthy_before + 5, "/$healthy", 2), "breaker ($status): the healthy destination keeps receiving")
	  if $healthy;
	usleep(2_500_000 - 1e6 * (time - $t0)) if time - $t0 < 2.5;
	my $hammer = scalar($sink->requests("/$name")) - $before;
	cmp_ok($hammer, '<=', 2, "breaker ($status): the failing destination got $hammer requests in 2.5 s (at most 2)");
	$sink->clear("/$name");
	ok( wait_until(20, sub { !grep { row($name, $_) !~ /^synced/ } @ids }),
		"breaker ($status): once the sink recovers and the cooldown passes, the backlog drains");
	is(status_of($name, q{breaker || '|' || pending || '|' || failed || '|' || synced}), 'closed|0|0|15',
		"breaker ($status): closed again, 15 synced, nothing pending or failed");
}

destination('broken', 'Brk', $breaker_options);
destination('healthy', 'Brk');
breaker_scenario('broken', 'Brk', 500, 'healthy');
is(status_of('healthy', q{breaker || '|' || synced}), 'closed|15', 'breaker: the healthy destination never opened');

# A 503 without Retry-After is an endpoint that is down, not one asking to
# slow down: it must trip the breaker like any other 5xx.
destination('down', 'Down', $breaker_options);
breaker_scenario('down', 'Down', 503);

# --- operators: retry and acknowledge ------------------------------------------------

my $id_of = \&outbox_id;
is(sql('SELECT ves.retry_events(ARRAY[' . $id_of->('maxatt', $e1) . '])'), 1, 'retry_events: one dead row reset');
ok(wait_row('maxatt', $e1, qr/^synced\|1\|200$/, 10), 'retry_events: the dead row is delivered, attempts counted afresh');
is(scalar(requests_for('maxatt', $e1)), 4, 'retry_events: one more request for it');
is(sql('SELECT ves.retry_events(ARRAY[' . $id_of->('gone', $gone_id) . '])'), 1, 'retry_events: the 410 row too');
ok(wait_row('gone', $gone_id, qr/^synced\|1\|200$/, 10), 'retry_events: and it is delivered');

is(sql('SELECT ves.acknowledge_events(ARRAY[' . $id_of->('reject', $r1) . ', ' . $id_of->('reject', $r2) . '])'),
	1, 'acknowledge_events: closes the dead row and leaves the synced one alone');
is(row('reject', $r1), 'acknowledged|1|400', 'acknowledge_events: the dead row is acknowledged');
is(row('reject', $r2), 'synced|1|200', 'acknowledge_events: the synced row is unchanged');

# Acknowledging a failed row waiting for a distant retry lets the entity go on.
destination('ack', 'Ack', '"backoff_base_ms": 600000');
$sink->control(path => '/ack', mode => 'status', status => 500, times => 1);
my ($a1, $a2) = append([ 'Ack', 'a' ], [ 'Ack', 'a' ]);
ok(wait_row('ack', $a1, qr/^failed\|1\|500$/, 10), 'acknowledge_events: the first event failed, retry in 10 minutes');
usleep(500_000);
is(row('ack', $a2), 'pending|0|', 'acknowledge_events: the entity\'s next event waits behind it');
is(sql('SELECT ves.acknowledge_events(ARRAY[' . $id_of->('ack', $a1) . '])'), 1, 'acknowledge_events: the failed row');
ok(wait_row('ack', $a2, qr/^synced\|1\|200$/, 5), 'acknowledge_events: the next event goes at once');
is(scalar(requests_for('ack', $a1)), 1, 'acknowledge_events: the acknowledged event is not sent again');
is(sql(q{SELECT count(*) FROM ves.list_outbox_events(max_count => 100000) WHERE status IN ('syncing', 'pending', 'failed')}),
	0, 'nothing is left open in the outbox');

$node->stop;
my @crashes = grep { /terminated by signal/ } split /\n/, slurp_file($node->logfile);
is_deeply(\@crashes, [], 'no process terminated by a signal');

done_testing();
