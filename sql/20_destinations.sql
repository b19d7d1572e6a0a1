-- Outbound destinations, hardened: credentials sealed at rest and never
-- shown, everything the worker parses checked when it is written, the
-- address reject list, the timeout cap, and sync settings that refuse
-- nonsense. No worker runs here; ves.push_events sends from this backend.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000002001'''
\set s '''00000000-0000-0000-0000-000000002002'''
\set whsec 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'

-- A plain header is a string; a secret one is {"value": ..., "secret": true}
-- and is shown redacted wherever headers are shown.
SELECT name, headers FROM ves.create_destination('sealed', 'webhook', 'https://example.com/hook',
  '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "headers": {"X-Plain": "visible", "Authorization": {"value": "Bearer tok-s3cr3t", "secret": true},
                "X-Not-Secret": {"value": "shown", "secret": false}}}');
SELECT headers FROM ves.destinations WHERE name = 'sealed';

-- Stored sealed: nonce (24) || MAC (16) || ciphertext, never the plain text.
SELECT length(s.secret_box) = 24 + 16 + length(:'whsec') AS secret_box_sealed_size,
       position(convert_to(:'whsec', 'UTF8') IN s.secret_box) = 0 AS secret_not_in_box,
       position(convert_to('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'UTF8') IN s.secret_box) = 0 AS key_not_in_box,
       position(convert_to('tok-s3cr3t', 'UTF8') IN s.headers_box) = 0 AS header_not_in_box
FROM ves.destination_secrets s JOIN ves.destinations d ON d.id = s.destination_id WHERE d.name = 'sealed';
-- No row of any pg_ves table holds either value, as text or as hex bytes.
CREATE FUNCTION regress_tables_holding(needle text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE t regclass; found text[] := '{}'; hit boolean;
BEGIN
  FOR t IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'ves'::regnamespace AND c.relkind IN ('r', 'p') LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s x WHERE x::text LIKE $1 OR x::text LIKE $2)', t)
      INTO hit USING '%' || needle || '%', '%' || encode(convert_to(needle, 'UTF8'), 'hex') || '%';
    IF hit THEN found := found || t::text; END IF;
  END LOOP;
  RETURN found;
END $$;
SELECT regress_tables_holding('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') AS secret_in, regress_tables_holding('tok-s3cr3t') AS header_in;
-- Sealing takes a fresh nonce each time: the same secret seals differently.
SELECT (SELECT secret_box FROM ves._destination_check('webhook', NULL, jsonb_build_object('secret', :'whsec')))
    <> (SELECT secret_box FROM ves._destination_check('webhook', NULL, jsonb_build_object('secret', :'whsec'))) AS fresh_nonce;

-- Altering: a new secret replaces the old one and keeps the headers; new
-- headers replace all headers; "secret": null removes the secret.
SELECT secret_box AS old_box FROM ves.destination_secrets WHERE destination_id = (SELECT id FROM ves.destinations WHERE name = 'sealed') \gset
SELECT headers FROM ves.alter_destination('sealed', '{"secret": "whsec_c2Vjb25kIHNlY3JldCBrZXkgZm9yIHRlc3Rz"}');
SELECT secret_box <> :'old_box'::bytea AS secret_replaced, headers_box IS NOT NULL AS headers_kept
FROM ves.destination_secrets WHERE destination_id = (SELECT id FROM ves.destinations WHERE name = 'sealed');
SELECT headers FROM ves.alter_destination('sealed', '{"headers": {"X-Plain": "only"}, "secret": null}');
SELECT count(*) AS secret_rows_left FROM ves.destination_secrets
WHERE destination_id = (SELECT id FROM ves.destinations WHERE name = 'sealed');
SELECT headers FROM ves.alter_destination('sealed', '{"headers": {"X-Api-Key": {"value": "k-123", "secret": true}}}');
SELECT headers_box IS NOT NULL AS headers_sealed, secret_box IS NULL AS no_secret
FROM ves.destination_secrets WHERE destination_id = (SELECT id FROM ves.destinations WHERE name = 'sealed');

-- URLs are parsed by libcurl's curl_url, as the worker will send them.
SELECT url FROM ves.alter_destination('sealed', '{}', url => 'HTTPS://Example.COM:8443/hook?x=1');
SELECT regress_try($q$SELECT ves.create_destination('u1', 'http', 'ftp://example.com/')$q$);
SELECT regress_try($q$SELECT ves.create_destination('u2', 'http', 'http://exa mple.com/')$q$);
SELECT regress_try($q$SELECT ves.create_destination('u3', 'http', E'http://example.com/\r\nX-Injected: 1')$q$);
SELECT regress_try($q$SELECT ves.create_destination('u4', 'http', 'http://example.com:99999/')$q$);
SELECT regress_try($q$SELECT ves.create_destination('u5', 'http', 'http://[::1/x')$q$);
SELECT regress_try($q$SELECT ves.create_destination('u6', 'http', 'https:///path')$q$);
SELECT regress_try($q$SELECT ves.create_destination('u7', 'http', 'http://')$q$);
SELECT regress_try($q$SELECT ves.alter_destination('sealed', '{}', url => E'http://example.com/\tx')$q$);
-- A credential in the url would sit in plain text: it belongs in a secret header.
SELECT regress_try($q$SELECT ves.create_destination('u8', 'http', 'https://user:pa55@example.com/')$q$);

-- Headers: token names, string values without control characters.
SELECT regress_try($q$SELECT ves.create_destination('h1', 'http', 'http://example.com/', '{"headers": {"X-Count": 5}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h2', 'http', 'http://example.com/', '{"headers": {"X Bad": "v"}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h3', 'http', 'http://example.com/', '{"headers": {"X-A": "a\r\nX-B: b"}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h4', 'http', 'http://example.com/', '{"headers": {"X-A": null}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h5', 'http', 'http://example.com/', '{"headers": ["X-A: b"]}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h6', 'http', 'http://example.com/', '{"headers": {"Content-Length": "1"}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h7', 'http', 'http://example.com/', '{"headers": {"X-A": {"value": "v", "secret": "yes"}}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('h8', 'http', 'http://example.com/', '{"headers": {"X-A": {"secret": true}}}')$q$);
-- A refused secret value is not repeated in the error.
SELECT regress_try($q$SELECT ves.create_destination('h9', 'http', 'http://example.com/', '{"headers": {"X-Key": {"value": "hunter2\n", "secret": true}}}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('s1', 'webhook', 'http://example.com/', '{"secret": 42}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('s2', 'webhook', 'http://example.com/', '{"secret": "whsk_c2hvcnQ="}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('s3', 'webhook', 'http://example.com/', NULL)$q$);

-- ves.max_timeout_ms caps timeout_ms; only a superuser changes it, by reload.
SHOW ves.max_timeout_ms;
SELECT timeout_ms FROM ves.create_destination('slow', 'http', 'http://example.com/', '{"timeout_ms": 60000}');
SELECT regress_try($q$SELECT ves.create_destination('slower', 'http', 'http://example.com/', '{"timeout_ms": 60001}')$q$);
SELECT regress_try($q$SELECT ves.alter_destination('slow', '{"timeout_ms": 120000, "rate_limit": 1}')$q$);
SELECT timeout_ms, rate_limit FROM ves.destinations WHERE name = 'slow';
SET ves.max_timeout_ms = 1000;
-- Nothing was written by any refused call.
SELECT string_agg(name, ', ' ORDER BY name) AS destinations FROM ves.destinations;

-- ves.destination_address_reject: link-local by default; the GUC check
-- refuses what is not a CIDR list; a refused connect is a retryable failure
-- whose error names the address and the setting.
SHOW ves.destination_address_reject;
SET ves.destination_address_reject = '';
ALTER SYSTEM SET ves.destination_address_reject = '10.0.0.1/8';
ALTER SYSTEM SET ves.destination_address_reject = '127.0.0.0/33';
ALTER SYSTEM SET ves.destination_address_reject = 'localhost';
SELECT name FROM ves.create_destination('metadata', 'http', 'http://169.254.169.254/latest/meta-data/',
  '{"tenant_id": "00000000-0000-0000-0000-000000002001", "max_attempts": 3, "timeout_ms": 2000}');
SELECT count(*) FROM ves.append(:t, :s, 'Probe', 'p-1', 'probe.sent', '{}');
SELECT sent, synced, failed, dead FROM ves.push_events('metadata');
SELECT status, attempts, last_error FROM ves.list_outbox_events(destination => 'metadata');
SELECT last_error FROM ves.get_sync_status() WHERE destination = 'metadata';

SELECT ves.drop_destination('sealed');
SELECT ves.drop_destination('slow');
SELECT ves.drop_destination('metadata');
SELECT count(*) AS secrets_left FROM ves.destination_secrets;

-- Sync settings: whole numbers in range, positive intervals as strings,
-- known keys only; a refused call writes nothing.
SELECT ves.get_sync_settings() AS before \gset
SELECT regress_try($q$SELECT ves.set_sync_settings('{"lease_seconds": -5}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"window": "64"}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"claim_batch": null}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"safety_poll_ms": 1e9}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"purge_batch": 0}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"synced_retention": "-1 day"}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"synced_retention": "0 seconds"}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"synced_retention": 86400}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"order_hold": "100 years"}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"window": 100, "claim_batch": 0}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('{"window": 100, "colour": "red"}')$q$);
SELECT regress_try($q$SELECT ves.set_sync_settings('[]')$q$);
SELECT ves.get_sync_settings() = :'before'::jsonb AS nothing_written;
SELECT ves.set_sync_settings('{"order_hold": "3 days"}') ->> 'order_hold' AS accepted;
SELECT ves.set_sync_settings(:'before'::jsonb) = :'before'::jsonb AS restored;
