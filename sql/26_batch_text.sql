-- ves.append_batch(text): the batch as JSON text, read one event at a time.
-- The text form writes exactly what the jsonb form writes, raises the same
-- errors, is the one an untyped literal resolves to, and has the jsonb form's
-- rights and settings.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000002601'''
\set s '''00000000-0000-0000-0000-000000002602'''

-- Every form: SECURITY DEFINER with a pinned search_path, for writers only.
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig,
       has_function_privilege('ves_writer', p.oid, 'EXECUTE') AS writer,
       has_function_privilege('ves_reader', p.oid, 'EXECUTE') AS reader,
       (SELECT bool_or(a.grantee = 0) FROM aclexplode(p.proacl) a) AS public
FROM pg_proc p WHERE p.proname = 'append_batch' AND p.pronamespace = 'ves'::regnamespace
ORDER BY 1::text;

-- An untyped literal resolves to the text form, a jsonb value to the jsonb
-- form, a json value to the json form (read as text).
CREATE TEMP VIEW calls AS
SELECT a.position AS a, b.position AS b, c.position AS c
FROM ves.append_batch('[]') a, ves.append_batch('[]'::jsonb) b, ves.append_batch('[]'::json) c;
SELECT regexp_matches(pg_get_viewdef('calls'), 'append_batch\(([^)]*)\)', 'g') AS argument;
DROP VIEW calls;

-- The same events through either form, written for two entities: payloads
-- with repeated keys (the last one counts), escapes, numbers in several
-- forms, nested arrays and white space between every token.
CREATE TEMP TABLE forms AS
SELECT form, format($j$ [
  { "tenant_id" : %s , "store_id" : %s , "entity_type" : "Doc" , "entity_id" : "%s-1" ,
    "event_type" : "doc.written" ,
    "payload" : { "a" : 1 , "a" : 2 , "s" : "\u00e9\n\"x\"\ud83d\ude00" , "n" : [ 1.50 , 1e2 , -0 , 12345678901234567890 ] ,
                  "deep" : [ [ [ ] ] , { "k" : [ { } ] } ] , "t" : true , "f" : false , "z" : null } ,
    "metadata" : { "via" : "text" } , "source" : "import" } ,
  { "tenant_id" : %s , "store_id" : %s , "entity_type" : "Doc" , "entity_id" : "%s-1" ,
    "event_type" : "doc.written" , "payload" : { } , "expected_version" : 1 } ] $j$,
  to_json(:t::text), to_json(:s::text), form, to_json(:t::text), to_json(:s::text), form) AS events
FROM unnest(ARRAY['text', 'jsonb']) form;
SELECT entity_version, duplicate FROM forms, ves.append_batch(events) WHERE form = 'text';
SELECT entity_version, duplicate FROM forms, ves.append_batch(events::jsonb) WHERE form = 'jsonb';
-- json_agg builds a json batch: it goes in as it is.
SELECT count(*) AS appended, count(*) FILTER (WHERE NOT duplicate) AS written
FROM ves.append_batch((SELECT json_agg(json_build_object('tenant_id', :t, 'store_id', :s, 'entity_type', 'Doc',
                                                         'entity_id', 'json-' || g, 'event_type', 'doc.written',
                                                         'payload', json_build_object('g', g)))
                       FROM generate_series(1, 3) g));
-- Row by row, the two forms stored the same things and signed them alike.
SELECT a.entity_version, a.payload = b.payload AS same_payload, a.payload_plain_hash = b.payload_plain_hash AS same_hash,
       a.metadata = b.metadata AS same_metadata, a.source = b.source AS same_source,
       a.payload -> 'a' AS a, a.payload ->> 's' AS s, a.payload -> 'n' AS n,
       ves.verify_event(a.event_id) AS text_form_verifies, ves.verify_event(b.event_id) AS jsonb_form_verifies
FROM ves.events a JOIN ves.events b USING (entity_version)
WHERE a.tenant_id = :t AND a.entity_id = 'text-1' AND b.tenant_id = :t AND b.entity_id = 'jsonb-1'
ORDER BY 1;

-- Empty arrays, with or without white space, append nothing.
SELECT count(*) FROM ves.append_batch('[]');
SELECT count(*) FROM ves.append_batch(E' \n [ \t ] \n');

-- Errors: the same as the jsonb form's, and nothing is written.
SELECT count(*) AS events_before FROM ves.events \gset
SELECT regress_try($q$SELECT * FROM ves.append_batch(NULL::text)$q$);
SELECT left(input, 24) AS input, regress_try(format('SELECT * FROM ves.append_batch(%L::text)', input)) AS text_form,
       regress_try(format('SELECT * FROM ves.append_batch(%L::text)', input)) =
       regress_try(format('SELECT * FROM ves.append_batch(%L::jsonb)', input)) AS as_jsonb_form
FROM unnest(ARRAY['', '[{"tenant_id": 1}', '[] []', '{"events": []}', '"[]"', '[null]', '[[{}]]', '[1, {}]',
  '[{"tenant_id": "00000000-0000-0000-0000-000000002601", "store_id": "00000000-0000-0000-0000-000000002602", "entity_type": "Doc", "entity_id": "x", "event_type": "doc.written", "payload": {"bad": "\u0000"}}]',
  '[{"tenant_id": "00000000-0000-0000-0000-000000002601", "store_id": "00000000-0000-0000-0000-000000002602", "entity_type": "Doc", "entity_id": "x", "event_type": "doc.written", "payload": {"n": 1e1000000}}]'
]) input;
-- A malformed event after good ones: named by its number, none written.
SELECT form, regress_try_event(format('SELECT * FROM ves.append_batch(%L::%s)', format('[%s, %s, {"tenant_id": %s}]',
         e, e, to_json(:t::text)), form)) AS error
FROM (SELECT format('{"tenant_id": %s, "store_id": %s, "entity_type": "Doc", "entity_id": "e", "event_type": "doc.written", "payload": {}}',
                    to_json(:t::text), to_json(:s::text)) AS e) x, unnest(ARRAY['text', 'jsonb']) form;
-- An event PostgreSQL's jsonb input refuses is named too (while the text is
-- read, before the number of events is known).
SELECT regress_try_event(format('SELECT * FROM ves.append_batch(%L)', format('[%s, {"payload": {"bad": "\u0000"}}, %s]', e, e))) AS error
FROM (SELECT format('{"tenant_id": %s, "store_id": %s, "entity_type": "Doc", "entity_id": "e", "event_type": "doc.written", "payload": {}}',
                    to_json(:t::text), to_json(:s::text)) AS e) x;
SELECT count(*) - :events_before AS written_by_errors FROM ves.events;

-- Batches kept in a table (compressed and stored out of line), one call per
-- row, 300 events each: enough for the signing threads. The last 50 repeat
-- the first 50 (key and content): they come back as their duplicates.
CREATE TEMP TABLE stored (n int, events text);
ALTER TABLE stored ALTER events SET STORAGE EXTENDED;
INSERT INTO stored
SELECT n, '[' || string_agg(format('{"tenant_id": %s, "store_id": %s, "entity_type": "Doc", "entity_id": "stored-%s-%s", '
                                   '"event_type": "doc.written", "idempotency_key": "k-%s-%s", '
                                   '"payload": {"g": %s, "filler": "%s"}}',
                                   to_json(:t::text), to_json(:s::text), n, g % 250 % 40, n, g % 250, g % 250, repeat('x', 50)),
                            ', ' ORDER BY g) || ']'
FROM generate_series(1, 2) n, generate_series(1, 300) g GROUP BY n;
SELECT n, pg_column_size(events) < octet_length(events) AS compressed FROM stored ORDER BY n;
SET ves.crypto_threads = 2;
SELECT s.n, count(*) AS results, count(*) FILTER (WHERE r.duplicate) AS duplicates,
       count(DISTINCT r.event_id) AS distinct_events, max(r.entity_version) AS max_version
FROM stored s, LATERAL ves.append_batch(s.events) r GROUP BY s.n ORDER BY s.n;
RESET ves.crypto_threads;
SELECT count(*) AS events, count(*) FILTER (WHERE ves.verify_event(event_id)) AS verified
FROM ves.events WHERE tenant_id = :t AND entity_id LIKE 'stored-%';
