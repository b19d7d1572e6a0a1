# Alerts and sync events reach destinations through the sync worker, like
# events: a destination that refuses a row (HTTP 400, the row goes dead)
# makes the worker append sync.failed on its sync stream and fire
# dead_rows; a destination with "alerts": true that takes the sync stream
# receives both as signed VES events, the refusing destination receives
# nothing about itself, and a second watcher that refuses everything too
# starts no chain of sync.failed. Acknowledging the alert is audited;
# closing the dead row resolves it, and alert.resolved arrives as well.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $node = new_node('ops');
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $sink = start_sink();
ok(enable_worker($node), 'a sync worker runs');

my $t = '00000000-0000-0000-0000-000000005301';
sql("SELECT ves.create_destination('shop', 'http', '" . $sink->url('/shop') . "', '{}')");
sql("SELECT ves.create_destination('watch', 'http', '" . $sink->url('/watch')
	  . q{', '{"entity_types": ["sync"], "alerts": true}')});
sql("SELECT ves.create_destination('down', 'http', '" . $sink->url('/down')
	  . q{', '{"entity_types": ["sync"], "alerts": true}')});
$sink->control(path => '/shop', mode => 'status', status => 400);
$sink->control(path => '/down', mode => 'status', status => 400);

sql("SELECT count(*) FROM ves.append('$t', '00000000-0000-0000-0000-000000005302', 'inventory', 'sku-1', 'stock.set', '{}')");

# What the watcher receives, decoded.
sub received
{
	my ($path) = @_;
	return map { decode_json($_->{body}) } $sink->requests($path);
}

ok( wait_until(120,
		sub {
			my @got = received('/watch');
			(grep { $_->{event_type} eq 'sync.failed' } @got)
			  && (grep { $_->{event_type} eq 'alert.firing' && $_->{payload}{rule} eq 'dead_rows'
			  && $_->{payload}{destination} eq 'shop' } @got);
		}),
	'the watcher receives sync.failed and the dead_rows alert');
my @watch = received('/watch');
my ($failed) = grep { $_->{event_type} eq 'sync.failed' } @watch;
is($failed->{entity_type} . '/' . $failed->{entity_id}, 'sync/shop', 'sync.failed is on the shop\'s sync stream');
is($failed->{payload}{destination}, 'shop', 'it names the destination');
is($failed->{payload}{entity_type} . '/' . $failed->{payload}{entity_id}, 'inventory/sku-1',
	'and the entity whose row went dead');
is($failed->{payload}{last_status}, 400, 'with the refusal');
ok(!exists $failed->{payload}{last_response}, 'and not the response body');
is(sql("SELECT ves.verify_event('$failed->{event_id}')"), 't', 'the received sync.failed verifies');
my ($firing) = grep { $_->{event_type} eq 'alert.firing' && $_->{payload}{rule} eq 'dead_rows'
			  && $_->{payload}{destination} eq 'shop' } @watch;
is($firing->{entity_type}, 'sync.alert', 'the alert is on its own stream');
is($firing->{payload}{destination}, 'shop', 'about the shop');
is($firing->{payload}{status}, 'firing', 'firing');
is(sql("SELECT ves.verify_event('$firing->{event_id}')"), 't', 'the received alert verifies');

# The shop gets its own row only; the refusing watcher's rows go dead, and
# no sync.failed is appended about them.
my @shop = received('/shop');
is(scalar(grep { $_->{entity_type} =~ /^sync/ } @shop), 0, 'the shop hears nothing about itself');
ok( wait_until(60,
		sub { sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
		            WHERE d.name = 'down' AND o.status = 'dead'}) >= 2 }),
	'the refusing watcher\'s sync and alert rows go dead');
sleep 3;
my $sync_events = sql(q{SELECT count(*) FROM ves.events WHERE entity_type = 'sync'});
is($sync_events, 1, 'one sync event in all: none about rows that carried sync events or alerts');
is(sql(q{SELECT count(*) FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
         WHERE d.name = 'down' AND o.entity_type = 'sync' AND o.entity_id = 'down'}), 0,
	'a destination is never sent sync events about itself');

# Acknowledge, then close the dead row: alert.resolved arrives.
my $alert = sql(q{SELECT alert_id FROM ves.alerts WHERE rule = 'dead_rows' AND destination = 'shop' AND status = 'firing'});
like(sql("SELECT acknowledged_by FROM ves.acknowledge_alert($alert, 'on it')"), qr/\w/, 'the alert is acknowledged');
is(sql(q{SELECT count(*) FROM ves.audit_log WHERE action = 'acknowledge_alert' AND target = 'dead_rows on shop'}), 1,
	'the acknowledgement is in the audit log');
sql(q{SELECT ves.acknowledge_events(ARRAY(SELECT o.id FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
                                          WHERE d.name = 'shop' AND o.status = 'dead'))});
ok( wait_until(120,
		sub {
			grep { $_->{event_type} eq 'alert.resolved' && $_->{payload}{alert_id} == $alert } received('/watch');
		}),
	'the watcher receives alert.resolved');
my ($resolved) = grep { $_->{event_type} eq 'alert.resolved' && $_->{payload}{alert_id} == $alert } received('/watch');
ok($resolved->{payload}{acknowledged_at}, 'it says the alert was acknowledged');
is(scalar(grep { ($_->{payload}{alert_id} // 0) == $alert } received('/watch')), 2,
	'one firing and one resolution for the alert, nothing in between');

my $log = slurp_file($node->logfile);
unlike($log, qr/could not be queued|was not appended|terminated by signal/, 'no failed append and no crash in the log');

$node->stop;
done_testing();
