-- One mechanism against plans cached while the tables were empty (tenancy_postgres::pool):
-- every connection tenancy opens sets plan_cache_mode = force_custom_plan, so each
-- execution is planned for the tables as they are. The entry points below pin the same
-- setting for callers that bring their own connections, in place of the enable_seqscan = off
-- of migrations 0005 and 0006 (which only covered plans inside these functions, and made a
-- sequential scan look impossible even where it is right).
ALTER FUNCTION zitadel.apply_change(jsonb, timestamptz) RESET enable_seqscan;
ALTER FUNCTION zitadel.apply_change(jsonb, timestamptz) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION zitadel.apply_changes(text[], jsonb[], timestamptz[]) RESET enable_seqscan;
ALTER FUNCTION zitadel.apply_changes(text[], jsonb[], timestamptz[]) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION eventstore.push(text[], text[], text[], text[], int2[], timestamptz[], jsonb[], text[], text[],
    int4[], bool[], int8[], int8[], text[], text) RESET enable_seqscan;
ALTER FUNCTION eventstore.push(text[], text[], text[], text[], int2[], timestamptz[], jsonb[], text[], text[],
    int4[], bool[], int8[], int8[], text[], text) SET plan_cache_mode = force_custom_plan;
