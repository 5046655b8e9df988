-- 0027: a canonical definition whose interaction type changes takes the new type's components
-- and drops the old type's.
--
-- The merge (0016) replaced each property of a definition by the latest statement's, one by
-- one. An Activity first described as a `choice` (with `choices`) and then as a `likert` (with
-- `scale`) became {"interactionType": "likert", "scale": [...], "choices": [...]}: a definition
-- no statement could carry (Data 2.4.4.1: the component lists a type may have), returned by
-- GET /activities and format=canonical. Found by a black-box audit.
--
-- So when the incoming definition names an interactionType other than the stored one, the
-- stored interaction properties (correctResponsesPattern and the component lists) are dropped
-- before the merge: the interaction is described by the latest statement as a whole. With the
-- same type, or none, properties are replaced one by one as before (a statement that names the
-- type without repeating its choices keeps them). lrs.ops.activities.merge_definition is the
-- same rule; spor_definition_unchanged needs no change (a different type is never contained).

CREATE OR REPLACE FUNCTION spor_merge_definition(stored jsonb, incoming jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN incoming ? 'interactionType' AND stored->'interactionType' IS DISTINCT FROM incoming->'interactionType'
                THEN stored - ARRAY['interactionType', 'correctResponsesPattern', 'choices', 'scale', 'source',
                                    'target', 'steps']
                ELSE stored END
        || incoming
        || CASE WHEN jsonb_typeof(stored->'name') = 'object' AND jsonb_typeof(incoming->'name') = 'object'
                THEN jsonb_build_object('name', (stored->'name') || (incoming->'name'))
                ELSE '{}'::jsonb END
        || CASE WHEN jsonb_typeof(stored->'description') = 'object' AND jsonb_typeof(incoming->'description') = 'object'
                THEN jsonb_build_object('description', (stored->'description') || (incoming->'description'))
                ELSE '{}'::jsonb END
$$;
