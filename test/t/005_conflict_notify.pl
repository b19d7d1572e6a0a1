# An open conflict announces itself: NOTIFY ves_conflicts with the conflict
# id as payload at commit, and a sync.conflict_detected event on the
# conflict's own stream; a conflict resolved by a rule sends nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000c6';
my $store = '00000000-0000-0000-0000-0000000000d6';

my $node = new_node('conflict_notify');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(qq{SELECT ves.upsert('$tenant', '$store', 'product', 'p1', '{"price": 1}')});
sql(qq{SELECT ves.upsert('$tenant', '$store', 'product', 'p1', '{"price": 2}', base_version => 1)});

# A listening session that makes a conflict receives its own notification at commit.
my ($rc, $out, $err) = $node->psql('postgres', qq{
LISTEN ves_conflicts;
SELECT 'conflict=' || conflict_id FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"price": 3}', base_version => 1);
});
is($rc, 0, 'the conflicting upsert succeeds');
my ($id) = $out =~ /conflict=([0-9a-f-]{36})/;
ok($id, 'it returns the conflict id');
like($out, qr/Asynchronous notification "ves_conflicts" with payload "\Q$id\E" received/,
	'NOTIFY ves_conflicts carries the conflict id');
is(sql(qq{SELECT event_type || ' ' || (payload ->> 'conflict_type') FROM ves.events
          WHERE entity_type = 'sync.conflict' AND entity_id = '$id'}),
	'sync.conflict_detected version_mismatch', 'and sync.conflict_detected is on its stream');

# Nothing is sent for a conflict a rule resolves, nor when the transaction rolls back.
sql(qq{SELECT ves.set_conflict_policy('$tenant', 'product', '{"strategy": "accept_remote", "review_window_ms": 0}')});
($rc, $out, $err) = $node->psql('postgres', qq{
LISTEN ves_conflicts;
SELECT outcome FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"price": 4}', base_version => 1);
BEGIN;
SELECT ves.set_conflict_policy('$tenant', 'product', '{"strategy": "merge"}');
SELECT outcome FROM ves.upsert('$tenant', '$store', 'product', 'p1', '{"price": 5}', base_version => 1);
ROLLBACK;
SELECT 'done';
});
like($out, qr/resolved.*conflict.*done/s, 'a resolved and a rolled-back conflict');
unlike($out, qr/Asynchronous notification/, 'send no notification');
is(sql(qq{SELECT count(*) FROM ves.open_conflicts WHERE tenant_id = '$tenant'}), 1,
	'only the committed open conflict is listed');

$node->stop;
done_testing();
