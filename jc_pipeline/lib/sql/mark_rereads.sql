-- Mark the files to read again after a change of the roster (pending_rereads): every path delivered to the inbox
-- folder of an agency whose reading changed, or of its superagency (old or new: a superagency's uploads carry its
-- children's rows). What the ingest reads from the roster is an agency's id and name (a superagency's agency column
-- names its children), sectors, fiscal year and superagency, and its effective settings (frequency, starting month,
-- subsystems); not its population, county or state, which the rebuild of every month applies (mark_whole_months).
-- Inputs: the reference tables as they are, and the roster's new rows, registered as incoming_agencies and
-- incoming_agency_metric_settings by reference.py. Folders are matched without case, as the ingest finds an
-- agency's folder.
INSERT INTO pending_rereads (path)
WITH old_agencies AS (
    SELECT agency_id, agency_name, sectors, fiscal_year_start_month, superagency_id FROM agencies
),
new_agencies AS (
    SELECT agency_id, agency_name, sectors, fiscal_year_start_month, superagency_id FROM incoming_agencies
),
old_settings AS (SELECT * EXCLUDE (is_default) FROM agency_metric_settings),
new_settings AS (SELECT * EXCLUDE (is_default) FROM incoming_agency_metric_settings),
changed AS (
    SELECT agency_id FROM (FROM old_agencies EXCEPT FROM new_agencies)
    UNION SELECT agency_id FROM (FROM new_agencies EXCEPT FROM old_agencies)
    UNION SELECT agency_id FROM (FROM old_settings EXCEPT FROM new_settings)
    UNION SELECT agency_id FROM (FROM new_settings EXCEPT FROM old_settings)
),
folders AS (
    SELECT lower(agency_id) AS folder FROM changed
    UNION SELECT lower(superagency_id) FROM old_agencies WHERE agency_id IN (SELECT agency_id FROM changed)
    UNION SELECT lower(superagency_id) FROM new_agencies WHERE agency_id IN (SELECT agency_id FROM changed)
)
SELECT DISTINCT path
FROM source_files
WHERE lower(agency_id) IN (SELECT folder FROM folders)
  AND path NOT IN (SELECT path FROM pending_rereads)
