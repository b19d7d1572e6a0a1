# ves.server_key_command: the server key that seals agent private keys comes
# from a command's standard output (64 hex digits) instead of a file in the
# data directory. A streaming standby configured with the same command can
# sign once promoted, because it opens the agent keys the primary sealed.
# A failing command or a wrong output is a VE023 error with a hint, and the
# key never reaches a server log or an error message.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use PgVesTest;

my $tenant = '00000000-0000-0000-0000-0000000000e1';
my $store = '00000000-0000-0000-0000-0000000000f1';

# The key lives outside both data directories, where a secret store would be.
my $key_hex = join '', map { sprintf '%02x', int(rand(256)) } 1 .. 32;
my $key_file = "$PostgreSQL::Test::Utils::tmp_check/server_key.hex";
append_to_file($key_file, "$key_hex\n");
chmod 0600, $key_file;

my $primary = new_node('primary', allows_streaming => 1);
# ves.server_key_file names a file that cannot be created: every key the
# primary uses comes from the command, which takes precedence.
$primary->append_conf('postgresql.conf', qq{
ves.server_key_command = 'cat $key_file'
ves.server_key_file = '/nonexistent/pg_ves_server.key'
});
$primary->reload;

sub append_on
{
	my ($node, $prefix, $n) = @_;
	return split /\n/, $node->safe_psql('postgres',
		"SELECT event_id FROM generate_series(1, $n) g,
		   LATERAL ves.append('$tenant', '$store', 'Order', '$prefix-' || g, 'order.created',
		                      jsonb_build_object('n', g))");
}

my @first = append_on($primary, 'p', 10);
is(scalar @first, 10, 'the primary signs appends with the key the command prints');
ok(!-e $primary->data_dir . '/pg_ves_server.key', 'no key file was created in the data directory');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM ves.verify_events()'), 0,
	'the events verify on the primary');

# --- only a superuser sees or sets it ------------------------------------------

$primary->safe_psql('postgres', 'CREATE ROLE app LOGIN');
my ($rc, $out, $err) = $primary->psql('postgres', 'SHOW ves.server_key_command', extra_params => [ '-U', 'app' ]);
like($err, qr/permission denied|must be superuser|pg_read_all_settings/,
	'a non-superuser cannot read ves.server_key_command');
($rc, $out, $err) = $primary->psql('postgres', q{SET ves.server_key_command = 'true'});
like($err, qr/cannot be changed now/, 'not even a superuser sets it in a session: it is read at reload');

# --- errors ----------------------------------------------------------------------

# Each psql is a new backend, which loads the key again when it first needs
# it: creating an agent key for a new store seals a private key.
sub key_error_with
{
	my ($command, $store_suffix) = @_;
	$primary->append_conf('postgresql.conf', "ves.server_key_command = '$command'\n");
	$primary->reload;
	my ($rc, $out, $err) = $primary->psql('postgres',
		"SELECT ves.create_agent_key('$tenant', '00000000-0000-0000-0000-0000000000$store_suffix')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err;
}

my $err_exit = key_error_with('exit 3', 'a1');
like($err_exit, qr/VE023/, 'a command that fails is SQLSTATE VE023');
like($err_exit, qr/ves.server_key_command failed/, '... saying the command failed');
like($err_exit, qr/exit code 3/, '... with its exit status');
like($err_exit, qr/HINT:.*64 hexadecimal digits/, '... and a hint on the expected output');

my $err_short = key_error_with('echo 0123abcd', 'a2');
like($err_short, qr/VE023.*printed something other than a server key/s, 'a short output is VE023');
like($err_short, qr/It printed 9 bytes/, '... described by its length');

# The key followed by more: wrong, and the error must not echo it.
my $err_long = key_error_with("cat $key_file $key_file", 'a3');
like($err_long, qr/VE023.*printed something other than a server key/s, 'the key twice is VE023');
unlike($err_long, qr/\Q$key_hex\E/i, '... and the error does not contain the key');

# A command that never stops writing is cut off, not read forever.
my $err_endless = key_error_with('yes', 'a5');
like($err_endless, qr/VE023/, 'a command with endless output is VE023, and does not hang the backend');

my $err_nothex = key_error_with(q{printf %064d 0 | tr 0 g}, 'a4');
like($err_nothex, qr/VE023.*printed something other than a server key/s, '64 characters that are not hex are VE023');

is($primary->safe_psql('postgres', q{SELECT count(*) FROM ves.local_agents WHERE store_id::text LIKE '%0000a_'}),
	0, 'no agent key was left behind by the failed calls');

$primary->append_conf('postgresql.conf', "ves.server_key_command = 'cat $key_file'\n");
$primary->reload;
is(scalar(append_on($primary, 'q', 1)), 1, 'with the command fixed and reloaded, appends sign again');

# --- a standby with the same command -------------------------------------------

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
# The backup carries postgresql.conf, ves.server_key_command included.
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

my @second = append_on($primary, 'r', 10);
$primary->wait_for_catchup($standby);
my $ids = join ',', map { "'$_'" } @first, @second;
is( $standby->safe_psql('postgres', "SELECT count(*) FROM ves.events WHERE event_id IN ($ids)"),
	20, 'the standby has the events appended on the primary');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE ves.verify_event(e)) FROM unnest(ARRAY[$ids]::uuid[]) e"),
	20, 'each verifies on the standby');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ves.verify_events()'), 0,
	'ves.verify_events finds nothing wrong on the standby');

# --- failover ----------------------------------------------------------------------

$primary->stop;
$standby->promote;
ok( wait_until(60, sub { $standby->safe_psql('postgres', 'SELECT NOT pg_is_in_recovery()') eq 't' }),
	'the standby is promoted');

# The promoted server opens the agent key the primary sealed: it has the
# same server key, from the same command.
my @third = append_on($standby, 's', 10);
is(scalar @third, 10, 'appends on the promoted standby succeed');
is( $standby->safe_psql('postgres',
		"SELECT count(DISTINCT source_agent_id) FROM ves.events WHERE tenant_id = '$tenant' AND store_id = '$store'"),
	1, 'signed by the same agent as on the primary');
is( $standby->safe_psql('postgres',
		'SELECT count(*) FILTER (WHERE ves.verify_event(e)) FROM unnest(ARRAY['
		  . join(',', map { "'$_'" } @third) . ']::uuid[]) e'),
	10, 'each new event verifies');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ves.verify_events()'), 0,
	'ves.verify_events finds nothing wrong after the failover');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM ves.events WHERE agent_signature IS NULL AND event_id IN ("
		  . join(',', map { "'$_'" } @third) . ')'),
	0, 'every event appended after the failover is signed');
ok(!-e $standby->data_dir . '/pg_ves_server.key', 'the standby created no key file either');

# --- run once, at start ------------------------------------------------------------

# Like ssl_passphrase_command, the postmaster runs the command when it starts
# and the backends it forks inherit the key: new connections start no shell.
my $runs = "$PostgreSQL::Test::Utils::tmp_check/key_command_runs";
$standby->append_conf('postgresql.conf', qq{ves.server_key_command = 'echo run >> $runs; cat $key_file'\n});
$standby->restart;
ok(-e $runs, 'the command ran when the server started');
append_on($standby, "once-$_", 1) for 1 .. 3;
is(scalar(split /\n/, slurp_file($runs)), 1, 'and only then: three new connections signed without running it');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM ves.verify_events()'), 0,
	'with the key it printed');

# --- the key never reaches a log ---------------------------------------------------

$standby->stop;
for my $node ($primary, $standby)
{
	my $log = slurp_file($node->logfile);
	unlike($log, qr/\Q$key_hex\E/i, $node->name . "'s server log does not contain the key");
}

done_testing();
