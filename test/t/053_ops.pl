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

# --- a platform: reconciliation announced, cross-platform latency --------------

sql(q{SELECT ves.drop_destination('shop'); SELECT ves.drop_destination('down')});
my $platform = start_platform('shopify');
my $pport = $platform->port;
my $tenant = '11111111-1111-4111-8111-111111111111';
my $store = '22222222-2222-4222-8222-222222222222';
my $loc = 'gid://shopify/Location/7';
my $item = 'gid://shopify/InventoryItem/101';
sql(qq{SELECT ves.create_destination('platform', 'shopify', 'http://127.0.0.1:$pport',
  '{"tenant_id": "$tenant", "store_id": "$store", "access_token": "shpat_pgves_test", "location_id": "$loc"}')});
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-A', 10)});
sql(qq{SELECT ves.map_listing('platform', 'SKU-A', '{"inventory_item_id": "$item"}')});
# The worker pushes the count: the platform then has the decided count, one
# cross-platform sample on the destination that completed it.
ok( wait_until(60,
		sub { sql(q{SELECT count(*) FROM ves.listings WHERE sku = 'SKU-A' AND known_quantity = 10}) == 1 }),
	'the worker pushes the mapped SKU\'s count to the platform');
like(sql(q~SELECT line FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') line
           WHERE line LIKE 'pgves_cross_platform_sync_seconds_count{destination="platform"%'~),
	qr/ 1$/, 'one cross-platform sample, counted on the platform');
is(sql(q{SELECT cross_platform_sync_p95 IS NOT NULL FROM ves.sync_metrics() WHERE destination IS NULL}), 't',
	'and ves.sync_metrics shows its p95');

# One SKU on two platforms (a second store location on the same mock): the
# worker's record of a push counts the sample when the second platform has
# the count, once, and a push that leaves the platforms in step as they
# were counts nothing more.
sub cross_samples
{
	my $sum = 0;
	$sum += $_ for sql(q~SELECT string_agg(line, E'\n') FROM regexp_split_to_table(ves.prometheus_metrics(), E'\n') line
	                      WHERE line LIKE 'pgves_cross_platform_sync_seconds_count%'~) =~ / (\d+)$/mg;
	return $sum;
}
sql(qq{SELECT ves.create_destination('platform2', 'shopify', 'http://127.0.0.1:$pport',
  '{"tenant_id": "$tenant", "store_id": "$store", "access_token": "shpat_pgves_test", "location_id": "gid://shopify/Location/8"}')});
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-B', 5)});
sql(qq{SELECT ves.map_listing(d, 'SKU-B', '{"inventory_item_id": "gid://shopify/InventoryItem/102"}')
       FROM unnest(ARRAY['platform', 'platform2']) d});
ok( wait_until(60,
		sub { sql(q{SELECT count(*) FROM ves.listings WHERE sku = 'SKU-B' AND known_quantity = 5}) == 2 }),
	'both platforms have SKU-B\'s count');
is(cross_samples(), 2, 'the second platform to have it completes one more sample');
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-B', 6)});
ok( wait_until(60,
		sub { sql(q{SELECT count(*) FROM ves.listings WHERE sku = 'SKU-B' AND known_quantity = 6}) == 2 }),
	'both platforms have SKU-B\'s new count');
is(cross_samples(), 3, 'a new count is one more sample, whichever platform completes it');
sql(qq{SELECT ves.set_stock('$tenant', '$store', 'SKU-B', 6)});
sql(q{SELECT ves.reconcile('platform')});
is(cross_samples(), 3, 'nothing new agrees: no sample');
sql(q{SELECT ves.drop_destination('platform2')});
sql(q{SELECT ves.unmap_listing('platform', 'SKU-B')});

is(sql(q{SELECT checked || ' ' || equal FROM ves.reconcile('platform')}), '1 1', 'a full reconciliation');
ok( wait_until(60,
		sub { grep { $_->{event_type} eq 'sync.completed' && $_->{payload}{equal} == 1 } received('/watch') }),
	'the watcher receives sync.completed');
# The worker reconciles a newly mapped destination by itself too: every
# run is a started/completed pair with one run id.
my @runs = grep { $_->{entity_type} eq 'sync' && $_->{entity_id} eq 'platform' } received('/watch');
my %run;
push @{ $run{ $_->{payload}{run} } }, $_->{event_type} for @runs;
ok(@runs >= 2 && !grep({ join(',', @{ $run{$_} }) ne 'sync.started,sync.completed' } keys %run),
	'sync.started then sync.completed per run, on the platform\'s sync stream')
  or diag(join ' ', map { "$_->{event_type}:$_->{payload}{run}" } @runs);
my ($mine) = grep { $_->{event_type} eq 'sync.completed' && $_->{payload}{equal} == 1 } @runs;
is(join(' ', map { $mine->{payload}{$_} // '' } qw(checked equal mismatched consistency_score)), '1 1 0 1',
	'the completion carries the counts');
is(sql(q{SELECT data_consistency_score FROM ves.sync_metrics() WHERE destination = 'platform'}), '1',
	'ves.sync_metrics reads the consistency from the run');

# --- recovery after the worker starts with a backlog -------------------------------

sql("SELECT ves.create_destination('healthy', 'http', '" . $sink->url('/healthy') . "', '{}')");
sql(q{SELECT ves.stop_worker()});
ok(wait_until(30, sub { sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_ves worker'}) == 0 }),
	'the worker stops');
sql("SELECT count(*) FROM generate_series(1, 20) g, LATERAL ves.append('$t', '00000000-0000-0000-0000-000000005302', 'order', 'o-' || g, 'order.created', '{}')");
sql(q{SELECT ves.start_worker()});
ok( wait_until(120,
		sub {
			sql(q{SELECT count(*) FROM ves.recoveries r JOIN ves.destinations d ON d.id = r.destination_id
			      WHERE d.name = 'healthy' AND r.cause = 'worker_start' AND r.drained_at IS NOT NULL}) == 1;
		}),
	'the worker start is a recovery, drained once the backlog is delivered');
is(scalar($sink->requests('/healthy')), 20, 'the backlog reached the destination');
is(sql(q{SELECT r.drained_at = (SELECT max(o.synced_at) FROM ves.outbox o WHERE o.destination_id = r.destination_id)
         FROM ves.recoveries r JOIN ves.destinations d ON d.id = r.destination_id WHERE d.name = 'healthy'}), 't',
	'timed to the last delivery of the backlog');
is(sql(q{SELECT recovery_time IS NOT NULL AND recovery_time < interval '2 min' FROM ves.sync_metrics() WHERE destination = 'healthy'}), 't',
	'ves.sync_metrics shows the recovery time');

my $log = slurp_file($node->logfile);
unlike($log, qr/could not be queued|was not appended|terminated by signal/, 'no failed append and no crash in the log');

$platform->stop;
$node->stop;
done_testing();
