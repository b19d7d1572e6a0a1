# Upgrades: a database created with every released version of pg_ves and
# brought up to date with ALTER EXTENSION pg_ves UPDATE ends with exactly the
# schema, grants and settings of a fresh install (test/sql/schema_description.sql),
# keeps its events verifiable and keeps working.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(decode_base64 encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $sink = start_sink();

my $repo = $ENV{PGVES_REPO} or die "PGVES_REPO must name the repository copy\n";
my $describe = slurp_file("$repo/test/sql/schema_description.sql");

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', slurp_file($ENV{PGVES_TEST_CONF}));
$node->start;

my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'pg_ves'});
my @released = grep { $_ ne $current } split /\n/, $node->safe_psql('postgres',
	q{SELECT version FROM pg_available_extension_versions WHERE name = 'pg_ves' ORDER BY version});
ok(@released >= 1, "released versions before $current: @released");

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_ves');
# Both databases get the same partitions (the upgraded one makes its month
# when it first appends), so partitions are compared too.
my $partitions = 'SELECT ves.ensure_partitions(); SELECT ves.ensure_idempotency_partitions();';
$node->safe_psql('fresh', $partitions);
my $want = $node->safe_psql('fresh', $describe);

my $t = '00000000-0000-0000-0000-0000000031aa';
my $s = '00000000-0000-0000-0000-000000003101';
for my $from (@released)
{
	(my $db = "from_$from") =~ s/\./_/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION pg_ves VERSION '$from'");
	# Data written by the old version.
	$node->safe_psql($db, qq{
		SELECT ves.append('$t', '$s', 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": 5}');
		SELECT ves.append('$t', '$s', 'Order', 'o-1', 'order.created', '{}', id => '00000000-0000-7000-8000-000000003101');
		SELECT ves.upsert('$t', '$s', 'Product', 'P-1', '{"title": "before"}', NULL, 'manual');
		SELECT ves.adjust_stock('$t', '$s', 'SKU-9', 10);
		SELECT ves.create_destination('old-hook', 'webhook', 'http://127.0.0.1:9/',
		                              '{"secret": "$whsec"}');
		SELECT ves.create_subscription('$t', 'old-sub');
	});
	$node->safe_psql($db, 'ALTER EXTENSION pg_ves UPDATE');
	$node->safe_psql($db, $partitions);
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'pg_ves'}),
		$current, "$from updates to $current");
	my $got = $node->safe_psql($db, $describe);
	if ($got eq $want)
	{
		pass("$from -> $current: the schema is the fresh install's");
	}
	else
	{
		my %w = map { $_ => 1 } split /\n/, $want;
		my %g = map { $_ => 1 } split /\n/, $got;
		my @missing = grep { !$g{$_} } split /\n/, $want;
		my @extra = grep { !$w{$_} } split /\n/, $got;
		fail("$from -> $current: the schema is the fresh install's");
		diag("only in a fresh install:\n  " . join("\n  ", @missing)) if @missing;
		diag("only after the upgrade:\n  " . join("\n  ", @extra)) if @extra;
	}
	is($node->safe_psql($db, 'SELECT count(*) FROM ves.verify_events()'), '0',
		'events written before the upgrade still verify');
	is($node->safe_psql($db, qq{
		SELECT entity_version FROM ves.append('$t', '$s', 'InventoryItem', 'SKU-1', 'inventory.adjusted', '{"delta": 1}')}),
		'2', 'appends go on where they left off');
	is($node->safe_psql($db, qq{SELECT (ves.upsert('$t', '$s', 'Product', 'P-1', '{"title": "after"}', 1, 'manual')).outcome}),
		'applied', 'upserts too');
	is($node->safe_psql($db, q{SELECT count(*) FROM ves.destinations WHERE name = 'old-hook'}), '1',
		'destinations are kept');
	my $dump = $node->safe_psql($db, q{SELECT string_agg(t::text, ' ') FROM ves.destination_secrets t});
	unlike($dump, qr/MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/, 'secrets stored by the old version are no longer plain text');

	# The sealed secret still signs: the append above went to the old
	# destination's outbox; send it to the mock platform.
	$sink->reset;
	$node->safe_psql($db, "SELECT ves.alter_destination('old-hook', '{}', '" . $sink->url("/$db") . "')");
	$node->safe_psql($db, "SELECT ves.push_events('old-hook', 100)");
	my ($r) = $sink->requests("/$db");
	ok($r, 'the old destination delivers after the upgrade');
	my $h = $r ? $r->{headers} : {};
	(my $key = $whsec) =~ s/^whsec_//;
	my $want = encode_base64(hmac_sha256("$h->{'webhook-id'}.$h->{'webhook-timestamp'}.$r->{body}", decode_base64($key)), '');
	ok((grep { $_ eq "v1,$want" } split / /, $h->{'webhook-signature'} // ''),
		'signed with the secret 0.1.0 stored, now sealed');
}
$sink->stop;

$node->stop;
done_testing();
