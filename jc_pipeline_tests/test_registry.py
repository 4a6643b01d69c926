"""Tests for the Tier 1 metric registry (jc_pipeline/registry/*.yaml + jc_pipeline.lib.registry).

Expected values are transcribed from /work/shared/justice-counts-spec.md (§1, §2, §3, §8.5, §9), never read back
from the YAML, so a typo in the registry data fails here.
"""

from __future__ import annotations

import copy
from collections import Counter
from importlib import resources

import pytest
import yaml

from jc_pipeline.lib.registry import (
    REGISTRY_FILE,
    SUPERVISION_SUBSYSTEMS,
    SYSTEM_CODES,
    TIER1_SECTORS,
    Registry,
    RegistryError,
    load_registry,
    normalize_sheet_name,
    validate,
)

RACE_AND_ETHNICITY = "global/race_and_ethnicity"
BIOLOGICAL_SEX = "global/biological_sex"
OFFENSE = "metric/offense/type"
BEHAVIORAL_HEALTH = "metric/jails/behavioral_health/type"

# §2.1-2.7: key, display name, upstream unit label, our unit, measurement type, default frequency, category,
# aggregate sheet.
METRICS = [
    ("LAW_ENFORCEMENT_FUNDING", "Funding", "Amount", "USD", "DELTA", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("LAW_ENFORCEMENT_EXPENSES", "Expenses", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("LAW_ENFORCEMENT_TOTAL_STAFF", "Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "staff"),
    ("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "Calls for Service", "Calls", "count", "DELTA", "MONTHLY", "POPULATIONS", "calls_for_service"),
    ("LAW_ENFORCEMENT_REPORTED_CRIME", "Reported Crime", "Reported Incidents", "count", "DELTA", "MONTHLY", "PUBLIC_SAFETY", "reported_crime"),
    ("LAW_ENFORCEMENT_ARRESTS", "Arrests", "Arrest Events", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "arrests"),
    ("LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS", "Use of Force Incidents", "Number of Incidents", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "use_of_force"),
    ("LAW_ENFORCEMENT_COMPLAINTS_SUSTAINED", "Civilian Complaints Sustained", "Complaints Sustained", "count", "DELTA", "ANNUAL", "FAIRNESS", "civilian_complaints"),
    ("PROSECUTION_FUNDING", "Funding", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("PROSECUTION_EXPENSES", "Expenses", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("PROSECUTION_TOTAL_STAFF", "Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "total_staff"),
    ("PROSECUTION_CASELOADS_PEOPLE", "Open Cases", "Caseload", "count", "INSTANT", "MONTHLY", "POPULATIONS", "open_cases"),
    ("PROSECUTION_CASELOADS_STAFF", "Staff with Caseload", "Caseload", "FTE", "INSTANT", "MONTHLY", "CAPACITY_AND_COSTS", "staff_with_caseload"),
    ("PROSECUTION_CASES REFERRED", "Cases Referred", "Cases per Attorney", "count", "DELTA", "MONTHLY", "POPULATIONS", "cases_referred"),
    ("PROSECUTION_CASES_DECLINED", "Cases Declined", "Cases", "count", "DELTA", "MONTHLY", "POPULATIONS", "cases_declined"),
    ("PROSECUTION_CASES_DIVERTED", "Cases Diverted/Deferred", "Cases", "count", "DELTA", "MONTHLY", "POPULATIONS", "cases_diverted"),
    ("PROSECUTION_CASES_PROSECUTED", "Cases Prosecuted", "Cases", "count", "DELTA", "MONTHLY", "POPULATIONS", "cases_prosecuted"),
    ("PROSECUTION_CASES_DISPOSED", "Cases Disposed", "Cases", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "cases_disposed"),
    ("PROSECUTION_VIOLATIONS_WITH_DISCIPLINARY_ACTION", "Violations Filed Resulting in Discipline", "Violations", "count", "DELTA", "ANNUAL", "FAIRNESS", "violations_filed"),
    ("DEFENSE_FUNDING", "Funding", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("DEFENSE_EXPENSES", "Expenses", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("DEFENSE_TOTAL_STAFF", "Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "total_staff"),
    ("DEFENSE_CASELOADS_PEOPLE", "Open Cases", "Caseload", "count", "INSTANT", "MONTHLY", "CAPACITY_AND_COSTS", "open_cases"),
    ("DEFENSE_CASELOADS_STAFF", "Staff with Caseload", "Caseload", "FTE", "INSTANT", "MONTHLY", "CAPACITY_AND_COSTS", "staff_with_caseload"),
    ("DEFENSE_CASES_APPOINTED_COUNSEL", "Cases Appointed Counsel", "Cases", "count", "DELTA", "MONTHLY", "POPULATIONS", "cases_appointed"),
    ("DEFENSE_CASES_DISPOSED", "Cases Disposed", "Cases", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "cases_disposed"),
    ("DEFENSE_COMPLAINTS_SUSTAINED", "Client Complaints Sustained", "Complaints Sustained", "count", "DELTA", "ANNUAL", "FAIRNESS", "complaints_sustained"),
    ("COURTS_AND_PRETRIAL_FUNDING", "Funding", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("COURTS_AND_PRETRIAL_EXPENSES", "Expenses", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("COURTS_AND_PRETRIAL_TOTAL_STAFF", "Judges and Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "judges_and_staff"),
    ("COURTS_AND_PRETRIAL_PRETRIAL_RELEASES", "Pretrial Releases", "Pretrial Releases", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "pretrial_releases"),
    ("COURTS_AND_PRETRIAL_CASES_FILED", "Criminal Case Filings", "Cases Filed", "count", "DELTA", "MONTHLY", "POPULATIONS", "cases_filed"),
    ("COURTS_AND_PRETRIAL_CASES_DISPOSED", "Cases Disposed", "Cases", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "cases_disposed"),
    ("COURTS_AND_PRETRIAL_SENTENCES", "Sentences Imposed", "Sentences", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "sentences_imposed"),
    ("COURTS_AND_PRETRIAL_ARRESTS_ON_PRETRIAL_RELEASE", "New Offenses While on Pretrial Release", "Arrests on Pretrial Release", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "offenses_on_release"),
    ("JAILS_FUNDING", "Funding", "Amount", "USD", "DELTA", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("JAILS_EXPENSES", "Expenses", "Amount", "USD", "DELTA", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("JAILS_TOTAL_STAFF", "Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "total_staff"),
    ("JAILS_TOTAL_ADMISSIONS", "Total Admissions", "Admission Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "total_admissions"),
    ("JAILS_PRE_ADJUDICATION_ADMISSIONS", "Pre-adjudication Admissions", "Admission Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "pre_adj_admissions"),
    ("JAILS_POST_ADJUDICATION_ADMISSIONS", "Post-adjudication Admissions", "Admission Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "post_adj_admissions"),
    ("JAILS_TOTAL_POPULATION", "Total Daily Population", "People Incarcerated", "count", "INSTANT", "MONTHLY", "POPULATIONS", "total_population"),
    ("JAILS_PRE_ADJUDICATION_POPULATION", "Pre-adjudication Daily Population", "People Incarcerated", "count", "INSTANT", "MONTHLY", "POPULATIONS", "pre_adj_population"),
    ("JAILS_POST_ADJUDICATION_POPULATION", "Post-adjudication Daily Population", "People Incarcerated", "count", "INSTANT", "MONTHLY", "POPULATIONS", "post_adj_population"),
    ("JAILS_TOTAL_RELEASES", "Total Releases", "Release Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "total_releases"),
    ("JAILS_PRE_ADJUDICATION_RELEASES", "Pre-adjudication Releases", "Release Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "pre_adj_releases"),
    ("JAILS_POST_ADJUDICATION_RELEASES", "Post-adjudication Releases", "Release Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "post_adj_releases"),
    ("JAILS_READMISSIONS", "Readmissions", "Readmission Events", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "readmissions"),
    ("JAILS_USE_OF_FORCE_INCIDENTS", "Use of Force Incidents", "Number of Incidents", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "use_of_force"),
    ("JAILS_GRIEVANCES_UPHELD", "Grievances Upheld", "Grievances Upheld", "count", "DELTA", "ANNUAL", "FAIRNESS", "grievances_upheld"),
    ("PRISONS_FUNDING", "Funding", "Amount", "USD", "DELTA", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("PRISONS_EXPENSES", "Expenses", "Amount", "USD", "DELTA", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("PRISONS_TOTAL_STAFF", "Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "staff"),
    ("PRISONS_ADMISSIONS", "Admissions", "Admission Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "admissions"),
    ("PRISONS_POPULATION", "Daily Population", "People Incarcerated", "count", "INSTANT", "MONTHLY", "POPULATIONS", "population"),
    ("PRISONS_RELEASES", "Releases", "Release Events", "count", "DELTA", "MONTHLY", "POPULATIONS", "releases"),
    ("PRISONS_READMISSIONS", "Readmissions", "Readmission Events", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "readmissions"),
    ("PRISONS_USE_OF_FORCE_INCIDENTS", "Use of Force Incidents", "Number of Incidents", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "use_of_force"),
    ("PRISONS_GRIEVANCES_UPHELD", "Grievances Upheld", "Grievances Upheld", "count", "DELTA", "ANNUAL", "FAIRNESS", "grievances_upheld"),
    ("SUPERVISION_FUNDING", "Funding", "Amount", "USD", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "funding"),
    ("SUPERVISION_EXPENSES", "Expenses", "Amount", "USD", "DELTA", "ANNUAL", "CAPACITY_AND_COSTS", "expenses"),
    ("SUPERVISION_TOTAL_STAFF", "Staff", "Full-time Equivalents", "FTE", "INSTANT", "ANNUAL", "CAPACITY_AND_COSTS", "total_staff"),
    ("SUPERVISION_CASELOADS_PEOPLE", "Open Cases", "Full-time Equivalents", "count", "INSTANT", "MONTHLY", "CAPACITY_AND_COSTS", "open_cases"),
    ("SUPERVISION_CASELOADS_STAFF", "Staff with Caseload", "Cases per Officer", "FTE", "INSTANT", "MONTHLY", "CAPACITY_AND_COSTS", "staff_with_caseload"),
    ("SUPERVISION_SUPERVISION_STARTS", "New Cases", "New Cases", "count", "DELTA", "MONTHLY", "POPULATIONS", "new_cases"),
    ("SUPERVISION_POPULATION", "Daily Population", "People on Supervision", "count", "INSTANT", "MONTHLY", "POPULATIONS", "population"),
    ("SUPERVISION_SUPERVISION_TERMINATIONS", "Discharges", "Discharges", "count", "DELTA", "MONTHLY", "POPULATIONS", "discharges"),
    ("SUPERVISION_SUPERVISION_VIOLATIONS", "Violations", "Violations", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "violations"),
    ("SUPERVISION_REVOCATIONS", "Revocations", "Revocations", "count", "DELTA", "MONTHLY", "OPERATIONS_AND_DYNAMICS", "revocations"),
    ("SUPERVISION_RECONVICTIONS", "Reconvictions", "Reconvictions", "count", "DELTA", "ANNUAL", "PUBLIC_SAFETY", "reconvictions"),
]

# §2.1-2.7 breakdowns: metric key, dimension identifier, required, sheet, breakdown column (None: no sheet, §9.14).
BREAKDOWNS = [
    ("LAW_ENFORCEMENT_FUNDING", "metric/law_enforcement/funding/type", False, "funding_by_type", "funding_type"),
    ("LAW_ENFORCEMENT_EXPENSES", "metric/expense/type", False, "expenses_by_type", "expense_type"),
    ("LAW_ENFORCEMENT_TOTAL_STAFF", "metric/law_enforcement/staff/type", False, "staff_by_type", "staff_type"),
    ("LAW_ENFORCEMENT_TOTAL_STAFF", "global/race_and_ethnicity", False, "staff_by_race", "race/ethnicity"),
    ("LAW_ENFORCEMENT_TOTAL_STAFF", "global/biological_sex", False, "staff_by_biological_sex", "biological_sex"),
    ("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", "metric/law_enforcement/calls_for_service/type", True, "calls_for_service_by_type", "call_type"),
    ("LAW_ENFORCEMENT_REPORTED_CRIME", "metric/offense/type", True, "reported_crime_by_type", "offense_type"),
    ("LAW_ENFORCEMENT_ARRESTS", "metric/offense/type", True, "arrests_by_type", "offense_type"),
    ("LAW_ENFORCEMENT_ARRESTS", "global/race_and_ethnicity", True, "arrests_by_race", "race/ethnicity"),
    ("LAW_ENFORCEMENT_ARRESTS", "global/biological_sex", True, "arrests_by_biological_sex", "biological_sex"),
    ("LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS", "metric/law_enforcement/officer_use_of_force_incidents/type", True, "use_of_force_by_type", "force_type"),
    ("LAW_ENFORCEMENT_COMPLAINTS_SUSTAINED", "metric/law_enforcement/complaint/type", False, "civilian_complaints_by_type", "complaint_type"),
    ("PROSECUTION_FUNDING", "metric/funding/prosecution/type", False, "funding_by_type", "funding_type"),
    ("PROSECUTION_EXPENSES", "metric/expense/type", False, "expenses_by_type", "expense_type"),
    ("PROSECUTION_TOTAL_STAFF", "metric/staff/prosecution_defense/type", False, "total_staff_by_type", "staff_type"),
    ("PROSECUTION_CASELOADS_PEOPLE", "metric/severity/prosecution_defense/type", False, "open_cases_by_type", "case_severity"),
    ("PROSECUTION_CASELOADS_STAFF", "metric/severity/prosecution_defense/type", False, "staff_with_caseload_by_type", "case_severity"),
    ("PROSECUTION_CASES REFERRED", "metric/severity/referred/prosecution/type", False, "cases_referred_by_severity", "case_severity"),
    ("PROSECUTION_CASES_DECLINED", "metric/declined/severity/prosecution/type", False, "cases_declined_by_severity", "case_severity"),
    ("PROSECUTION_CASES_DECLINED", "global/biological_sex", False, "cases_declined_by_sex", "biological_sex"),
    ("PROSECUTION_CASES_DECLINED", "global/race_and_ethnicity", False, "cases_declined_by_race", "race/ethnicity"),
    ("PROSECUTION_CASES_DIVERTED", "metric/severity/diverted/prosecution/type", False, "cases_diverted_by_type", "case_severity"),
    ("PROSECUTION_CASES_DIVERTED", "global/biological_sex", False, "cases_diverted_by_sex", "biological_sex"),
    ("PROSECUTION_CASES_DIVERTED", "global/race_and_ethnicity", False, "cases_diverted_by_race", "race/ethnicity"),
    ("PROSECUTION_CASES_PROSECUTED", "metric/severity/prosecuted/prosecution/type", False, "cases_prosecuted_by_type", "case_severity"),
    ("PROSECUTION_CASES_PROSECUTED", "global/biological_sex", False, "cases_prosecuted_by_sex", "biological_sex"),
    ("PROSECUTION_CASES_PROSECUTED", "global/race_and_ethnicity", False, "cases_prosecuted_by_race", "race/ethnicity"),
    ("PROSECUTION_CASES_DISPOSED", "metric/disposition/type", False, "cases_disposed_by_type", "disposition_type"),
    ("DEFENSE_FUNDING", "metric/funding/defense/type", False, "funding_by_type", "funding_type"),
    ("DEFENSE_EXPENSES", "metric/expenses/defense/type", False, "expenses_by_type", "expense_type"),
    ("DEFENSE_TOTAL_STAFF", "metric/defense/staff/type", False, "total_staff_by_type", "staff_type"),
    ("DEFENSE_CASELOADS_PEOPLE", "metric/severity/prosecution_defense/type", False, "open_cases_by_type", "severity_type"),
    ("DEFENSE_CASELOADS_STAFF", "metric/severity/prosecution_defense/type", False, "staff_with_caseload_by_type", "severity_type"),
    ("DEFENSE_CASES_APPOINTED_COUNSEL", "metric/appointed/severity/prosecution/type", False, "cases_appointed_by_severity", "severity_type"),
    ("DEFENSE_CASES_DISPOSED", "metric/disposition/type", False, "cases_disposed_by_type", "disposition_type"),
    ("DEFENSE_CASES_DISPOSED", "global/biological_sex", False, "cases_disposed_by_sex", "biological_sex"),
    ("DEFENSE_CASES_DISPOSED", "global/race_and_ethnicity", False, "cases_disposed_by_race", "race/ethnicity"),
    ("COURTS_AND_PRETRIAL_FUNDING", "metric/courts/funding/type", True, "funding_by_type", "funding_type"),
    ("COURTS_AND_PRETRIAL_EXPENSES", "metric/expense/type", True, "expenses_by_type", "expense_type"),
    ("COURTS_AND_PRETRIAL_TOTAL_STAFF", "metric/courts/staff/type", False, "judges_and_staff_by_type", "judges_and_staff_type"),
    ("COURTS_AND_PRETRIAL_PRETRIAL_RELEASES", "metric/courts/release/type", False, "pretrial_releases_by_type", "release_type"),
    ("COURTS_AND_PRETRIAL_CASES_FILED", "metric/courts/case/severity/type", False, "cases_filed_by_severity", "severity_type"),
    ("COURTS_AND_PRETRIAL_CASES_DISPOSED", "metric/disposition/type", False, "cases_disposed_by_type", "disposition_type"),
    ("COURTS_AND_PRETRIAL_SENTENCES", "metric/courts/sentence/type", False, "sentences_imposed_by_type", "sentence_type"),
    ("COURTS_AND_PRETRIAL_SENTENCES", "global/race_and_ethnicity", False, "sentences_imposed_by_race", "race/ethnicity"),
    ("COURTS_AND_PRETRIAL_SENTENCES", "global/biological_sex", False, "sentences_imposed_by_sex", "biological_sex"),
    ("JAILS_FUNDING", "metric/jails/funding/type", False, "funding_by_type", "funding_type"),
    ("JAILS_EXPENSES", "metric/jails/expense/type", False, "expenses_by_type", "expense_type"),
    ("JAILS_TOTAL_STAFF", "metric/jails/staff/type", False, "total_staff_by_type", "staff_type"),
    ("JAILS_TOTAL_ADMISSIONS", "metric/offense/type", False, "total_admissions_by_type", "offense_type"),
    ("JAILS_TOTAL_ADMISSIONS", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_PRE_ADJUDICATION_ADMISSIONS", "metric/offense/type", False, "pre_adj_admissions_by_type", "offense_type"),
    ("JAILS_PRE_ADJUDICATION_ADMISSIONS", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_POST_ADJUDICATION_ADMISSIONS", "metric/offense/type", False, "post_adj_admissions_by_type", "offense_type"),
    ("JAILS_POST_ADJUDICATION_ADMISSIONS", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_TOTAL_POPULATION", "metric/offense/type", False, "total_population_by_type", "offense_type"),
    ("JAILS_TOTAL_POPULATION", "global/race_and_ethnicity", False, "total_population_by_race", "race/ethnicity"),
    ("JAILS_TOTAL_POPULATION", "global/biological_sex", True, "total_population_by_sex", "biological_sex"),
    ("JAILS_TOTAL_POPULATION", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_PRE_ADJUDICATION_POPULATION", "metric/offense/type", False, "pre_adj_population_by_type", "offense_type"),
    ("JAILS_PRE_ADJUDICATION_POPULATION", "global/race_and_ethnicity", True, "pre_adj_population_by_race", "race/ethnicity"),
    ("JAILS_PRE_ADJUDICATION_POPULATION", "global/biological_sex", True, "pre_adj_population_by_sex", "biological_sex"),
    ("JAILS_PRE_ADJUDICATION_POPULATION", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_POST_ADJUDICATION_POPULATION", "metric/offense/type", False, "post_adj_population_by_type", "offense_type"),
    ("JAILS_POST_ADJUDICATION_POPULATION", "global/race_and_ethnicity", True, "post_adj_population_by_race", "race/ethnicity"),
    ("JAILS_POST_ADJUDICATION_POPULATION", "global/biological_sex", True, "post_adj_population_by_sex", "biological_sex"),
    ("JAILS_POST_ADJUDICATION_POPULATION", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_TOTAL_RELEASES", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_PRE_ADJUDICATION_RELEASES", "metric/jails/pre_adjudication/release/type", False, "pre_adj_releases_by_type", "release_type"),
    ("JAILS_PRE_ADJUDICATION_RELEASES", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_POST_ADJUDICATION_RELEASES", "metric/jails/post_adjudication/release/type", False, "post_adj_releases_by_type", "release_type"),
    ("JAILS_POST_ADJUDICATION_RELEASES", "metric/jails/behavioral_health/type", False, None, None),
    ("JAILS_GRIEVANCES_UPHELD", "metric/jails/grievances/type", False, "grievances_upheld_by_type", "grievances_upheld_type"),
    ("PRISONS_FUNDING", "metric/prisons/funding/type", False, "funding_by_type", "funding_type"),
    ("PRISONS_EXPENSES", "metric/prisons/expenses/type", False, "expenses_by_type", "expense_type"),
    ("PRISONS_TOTAL_STAFF", "metric/prisons/staff/type", False, "staff_by_type", "staff_type"),
    ("PRISONS_ADMISSIONS", "metric/offense/type", False, "admissions_by_type", "admission_type"),
    ("PRISONS_POPULATION", "global/biological_sex", True, "population_by_biological_sex", "biological_sex"),
    ("PRISONS_POPULATION", "global/race_and_ethnicity", True, "population_by_race", "race/ethnicity"),
    ("PRISONS_POPULATION", "metric/offense/type", True, "population_by_type", "offense_type"),
    ("PRISONS_RELEASES", "metric/prisons/release/type", False, "releases_by_type", "release_type"),
    ("PRISONS_READMISSIONS", "metric/prisons/readmissions/type", False, "readmissions_by_type", "readmission_type"),
    ("PRISONS_GRIEVANCES_UPHELD", "metric/prisons/grievances/type", False, "grievances_upheld_by_type", "grievances_type"),
    ("SUPERVISION_FUNDING", "metric/supervision/funding/type", False, "funding_by_type", "funding_type"),
    ("SUPERVISION_EXPENSES", "metric/expense/type", True, "expenses_by_type", "expense_type"),
    ("SUPERVISION_TOTAL_STAFF", "metric/staff/supervision/type", False, "total_staff_by_type", "staff_type"),
    ("SUPERVISION_SUPERVISION_STARTS", "metric/offense/type", False, "new_cases_by_type", "case_type"),
    ("SUPERVISION_POPULATION", "metric/supervision/daily_population/type", True, "population_by_type", "supervision_type"),
    ("SUPERVISION_POPULATION", "global/race_and_ethnicity", True, "population_by_race", "race/ethnicity"),
    ("SUPERVISION_POPULATION", "global/biological_sex", True, "population_by_biological_sex", "biological_sex"),
    ("SUPERVISION_SUPERVISION_TERMINATIONS", "metric/supervision/discharge/type", True, "discharges_by_type", "discharges_type"),
    ("SUPERVISION_SUPERVISION_VIOLATIONS", "metric/violation/supervision/type", True, "violations_by_type", "violation_type"),
    ("SUPERVISION_REVOCATIONS", "metric/supervision/revocation/type", True, "revocations_by_type", "revocations_type"),
]

# §3: member NAMEs of every dimension, in spec order.
DIMENSION_MEMBERS = [
    ("metric/offense/type", "PERSON PROPERTY DRUG PUBLIC_ORDER OTHER UNKNOWN"),
    ("global/biological_sex", "MALE FEMALE UNKNOWN"),
    ("metric/expense/type", "PERSONNEL TRAINING FACILITIES OTHER UNKNOWN"),
    ("metric/severity/prosecution_defense/type", "FELONY MISDEMEANOR MIXED OTHER UNKNOWN"),
    ("metric/disposition/type", "DISMISSAL PLEA TRIAL OTHER UNKNOWN"),
    ("metric/law_enforcement/funding/type", "STATE_APPROPRIATION COUNTY_APPROPRIATION ASSET_FORFEITURE GRANTS OTHER UNKNOWN"),
    ("metric/law_enforcement/staff/type", "LAW_ENFORCEMENT_OFFICERS CIVILIAN_STAFF MENTAL_HEALTH VICTIM_ADVOCATES OTHER UNKNOWN VACANT"),
    ("metric/law_enforcement/calls_for_service/type", "EMERGENCY NON_EMERGENCY OTHER UNKNOWN"),
    ("metric/law_enforcement/officer_use_of_force_incidents/type", "PHYSICAL RESTRAINT FIREARM OTHER_WEAPON OTHER UNKNOWN"),
    ("metric/law_enforcement/complaint/type", "EXCESSIVE_USES_OF_FORCE DISCRIMINATION OTHER UNKNOWN"),
    ("metric/funding/prosecution/type", "STATE_APPROPRIATIONS COUNTY_OR_MUNICIPAL_APPROPRIATIONS GRANTS OTHER UNKNOWN"),
    ("metric/staff/prosecution_defense/type", "LEGAL_STAFF ADVOCATE_STAFF ADMINISTRATIVE INVESTIGATIVE_STAFF OTHER UNKNOWN VACANT_POSITIONS"),
    ("metric/severity/referred/prosecution/type", "FELONY MISDEMEANOR OTHER UNKNOWN"),
    ("metric/declined/severity/prosecution/type", "FELONY MISDEMEANOR OTHER UNKNOWN"),
    ("metric/severity/diverted/prosecution/type", "FELONY MISDEMEANOR OTHER UNKNOWN"),
    ("metric/severity/prosecuted/prosecution/type", "FELONY MISDEMEANOR OTHER UNKNOWN"),
    ("metric/funding/defense/type", "STATE_APPROPRIATION COUNTY_OR_MUNICIPAL_APPROPRIATION GRANTS FEES OTHER UNKNOWN"),
    ("metric/expenses/defense/type", "PERSONNEL TRAINING FACILITIES_AND_EQUIPMENT OTHER UNKNOWN"),
    ("metric/defense/staff/type", "LEGAL ADMINISTRATIVE INVESTIGATIVE OTHER UNKNOWN VACANT"),
    ("metric/appointed/severity/prosecution/type", "FELONY MISDEMEANOR OTHER UNKNOWN"),
    ("metric/courts/funding/type", "STATE_APPROPRIATION COUNTY_OR_MUNICIPAL_APPROPRIATION GRANTS OTHER UNKNOWN"),
    ("metric/courts/staff/type", "JUDGES LEGAL SECURITY ADMINISTRATIVE ADVOCATE OTHER UNKNOWN VACANT"),
    ("metric/courts/release/type", "ON_OWN MONETARY_BAIL NON_MONETARY_BAIL OTHER UNKNOWN"),
    ("metric/courts/sentence/type", "PRISON JAIL SPLIT SUSPENDED COMMUNITY_SUPERVISION FINES_FEES OTHER UNKNOWN"),
    ("metric/courts/case/severity/type", "FELONY MISDEMEANOR OTHER UNKNOWN"),
    ("metric/jails/funding/type", "STATE_APPROPRIATION COUNTY_MUNICIPAL GRANTS COMMISSARY_FEES CONTRACT_BEDS OTHER UNKNOWN"),
    ("metric/jails/expense/type", "PERSONNEL TRAINING FACILITIES HEALTH_CARE CONTRACT_BEDS OTHER UNKNOWN"),
    ("metric/jails/staff/type", "SECURITY MANAGEMENT_AND_OPERATIONS CLINICAL_AND_MEDICAL PROGRAMMATIC OTHER UNKNOWN VACANT"),
    ("metric/jails/pre_adjudication/release/type", "AWAITING_TRIAL BAIL DEATH AWOL OTHER UNKNOWN"),
    ("metric/jails/post_adjudication/release/type", "PROBATION PAROLE COMMUNITY_SUPERVISION NO_ADDITIONAL_CONTROL DEATH AWOL OTHER UNKNOWN"),
    ("metric/jails/grievances/type", "LIVING_CONDITIONS PERSONAL_SAFETY DISCRIMINATION ACCESS_TO_HEALTH_CARE LEGAL OTHER UNKNOWN"),
    ("metric/jails/behavioral_health/type", "MENTAL_HEALTH SUBSTANCE_USE CO_OCCURRING_DISORDERS OTHER UNKNOWN NONE"),
    ("metric/prisons/funding/type", "STATE_APPROPRIATION GRANTS COMMISSARY_AND_FEES CONTRACT_BEDS OTHER UNKNOWN"),
    ("metric/prisons/expenses/type", "PERSONNEL TRAINING FACILITIES_AND_EQUIPMENT HEALTH_CARE CONTRACT_BEDS OTHER UNKNOWN"),
    ("metric/prisons/staff/type", "SECURITY MANAGEMENT_AND_OPERATIONS CLINICAL_AND_MEDICAL PROGRAMMATIC OTHER UNKNOWN VACANT"),
    ("metric/prisons/release/type", "TO_PROBATION_SUPERVISION TO_PAROLE_SUPERVISION TO_COMMUNITY_SUPERVISION NO_CONTROL DEATH OTHER UNKNOWN"),
    ("metric/prisons/readmissions/type", "NEW_CONVICTION RETURN_FROM_PROBATION RETURN_FROM_PAROLE OTHER_COMMUNITY_SUPERVISION OTHER UNKNOWN"),
    ("metric/supervision/funding/type", "STATE_APPROPRIATION COUNTY_MUNICIPAL_APPROPRIATION GRANTS FINES_FEES OTHER UNKNOWN"),
    ("metric/staff/supervision/type", "SUPERVISION MANAGEMENT_AND_OPERATIONS CLINICAL_AND_MEDICAL PROGRAMMATIC OTHER UNKNOWN VACANT"),
    ("metric/violation/supervision/type", "TECHNICAL ABSCONDING NEW_OFFENSE OTHER UNKNOWN"),
    ("metric/supervision/daily_population/type", "ACTIVE ADMINISTRATIVE ABSCONDED HOLD_OR_SANCTION OTHER UNKNOWN"),
    ("metric/supervision/discharge/type", "SUCCESSFUL NEUTRAL UNSUCCESSFUL OTHER UNKNOWN"),
    ("metric/supervision/revocation/type", "TECHNICAL NEW_OFFENSE OTHER UNKNOWN"),
    ("metric/superagency/staff/type", "FILLED VACANT"),
    ("metric/prisons/grievances/type",
     "LIVING_CONDITIONS PERSONAL_SAFETY DISCRIMINATION ACCESS_TO_HEALTH_CARE LEGAL OTHER UNKNOWN"),
    ("global/race/census",
     "AMERICAN_INDIAN_ALASKAN_NATIVE ASIAN BLACK MORE_THAN_ONE_RACE NATIVE_HAWAIIAN_PACIFIC_ISLANDER OTHER WHITE "
     "UNKNOWN HISPANIC_OR_LATINO"),
    ("metric/superagency/funding/type",
     "STATE_APPROPRIATIONS COUNTY_OR_MUNICIPAL_APPROPRIATIONS GRANTS OTHER UNKNOWN"),
    ("metric/superagency/expenses/type", "PERSONNEL TRAINING FACILITIES_AND_EQUIPMENT OTHER UNKNOWN"),
    (RACE_AND_ETHNICITY,
     "HISPANIC_AMERICAN_INDIAN_ALASKAN_NATIVE HISPANIC_ASIAN HISPANIC_BLACK HISPANIC_MORE_THAN_ONE_RACE "
     "HISPANIC_NATIVE_HAWAIIAN_PACIFIC_ISLANDER HISPANIC_WHITE HISPANIC_OTHER HISPANIC_UNKNOWN "
     "NOT_HISPANIC_AMERICAN_INDIAN_ALASKAN_NATIVE NOT_HISPANIC_ASIAN NOT_HISPANIC_BLACK "
     "NOT_HISPANIC_MORE_THAN_ONE_RACE NOT_HISPANIC_NATIVE_HAWAIIAN_PACIFIC_ISLANDER NOT_HISPANIC_WHITE "
     "NOT_HISPANIC_OTHER NOT_HISPANIC_UNKNOWN "
     "UNKNOWN_ETHNICITY_AMERICAN_INDIAN_ALASKAN_NATIVE UNKNOWN_ETHNICITY_ASIAN UNKNOWN_ETHNICITY_BLACK "
     "UNKNOWN_ETHNICITY_MORE_THAN_ONE_RACE UNKNOWN_ETHNICITY_NATIVE_HAWAIIAN_PACIFIC_ISLANDER "
     "UNKNOWN_ETHNICITY_WHITE UNKNOWN_ETHNICITY_OTHER UNKNOWN_ETHNICITY_UNKNOWN"),
]

# §2.9 per sector: number of metrics, monthly by default, annual by default, metrics with >= 1 breakdown.
SECTOR_COUNTS = {
    "LAW_ENFORCEMENT": (8, 3, 5, 8),
    "PROSECUTION": (11, 7, 4, 10),
    "DEFENSE": (8, 4, 4, 7),
    "COURTS_AND_PRETRIAL": (8, 4, 4, 7),
    "JAILS": (15, 9, 6, 13),
    "PRISONS": (9, 3, 6, 8),
    "SUPERVISION": (11, 7, 4, 8),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def _raw_yaml() -> dict:
    text = resources.files("jc_pipeline.registry").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.fixture
def raw(_raw_yaml: dict) -> dict:
    """A private, mutable copy of the packaged registry data, for feeding broken variants to the validator."""
    return copy.deepcopy(_raw_yaml)


def _metric_entry(raw: dict, key: str) -> dict:
    return next(m for m in raw["metrics"] if m["key"] == key)


# ---- counts -------------------------------------------------------------------------------------------------------


def test_total_counts(registry: Registry) -> None:
    sectors = Counter(m.sector for m in registry.metrics.values())
    assert sum(sectors[s] for s in TIER1_SECTORS) == 70
    assert sum(sectors[s] for s in SUPERVISION_SUBSYSTEMS) == 44
    assert sectors["SUPERAGENCY"] == 3
    assert len(registry.metrics) == 117
    assert set(sectors) == set(SYSTEM_CODES)


@pytest.mark.parametrize("sector", TIER1_SECTORS)
def test_sector_counts(registry: Registry, sector: str) -> None:
    metrics = registry.metrics_for(sector)
    counts = (
        len(metrics),
        sum(m.default_frequency == "MONTHLY" for m in metrics),
        sum(m.default_frequency == "ANNUAL" for m in metrics),
        sum(bool(m.breakdowns) for m in metrics),
    )
    assert counts == SECTOR_COUNTS[sector]


@pytest.mark.parametrize("subsystem", SUPERVISION_SUBSYSTEMS)
def test_subsystem_counts(registry: Registry, subsystem: str) -> None:
    metrics = registry.metrics_for(subsystem)
    assert len(metrics) == 11
    assert sum(bool(m.breakdowns) for m in metrics) == 8


def test_insertion_order_follows_spec(registry: Registry) -> None:
    keys = list(registry.metrics)
    assert keys[:70] == [row[0] for row in METRICS]
    assert keys[70:81] == [registry.subsystem_key(k, "PAROLE") for k in keys[59:70]]
    assert keys[-3:] == ["SUPERAGENCY_FUNDING", "SUPERAGENCY_EXPENSES", "SUPERAGENCY_TOTAL_STAFF"]


# ---- metric definitions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", METRICS, ids=[row[0] for row in METRICS])
def test_metric_definition(registry: Registry, row: tuple) -> None:
    key, display, reference_unit, unit, measurement, frequency, category, sheet = row
    m = registry.metrics[key]
    assert (m.display_name, m.reference_unit, m.unit, m.measurement_type, m.default_frequency, m.category,
            m.sheet) == (display, reference_unit, unit, measurement, frequency, category, sheet)
    assert m.key.startswith(m.sector + "_") and m.parent_sector == m.sector


@pytest.mark.parametrize("sector", TIER1_SECTORS)
def test_breakdowns(registry: Registry, sector: str) -> None:
    got = sorted(
        (m.key, b.dimension.identifier, b.required, b.sheet, b.column)
        for m in registry.metrics_for(sector) for b in m.breakdowns
    )
    expected = sorted(row for row in BREAKDOWNS if registry.metrics[row[0]].sector == sector)
    assert got == expected


def test_superagency(registry: Registry) -> None:
    got = [(m.key, m.display_name, m.unit, m.measurement_type, m.default_frequency, m.sheet,
            [(b.dimension.identifier, b.sheet, b.column) for b in m.breakdowns])
           for m in registry.metrics_for("SUPERAGENCY")]
    assert got == [
        ("SUPERAGENCY_FUNDING", "Funding", "USD", "INSTANT", "ANNUAL", "funding",
         [("metric/superagency/funding/type", "funding_by_type", "funding_type")]),
        ("SUPERAGENCY_EXPENSES", "Expenses", "USD", "INSTANT", "ANNUAL", "expenses",
         [("metric/superagency/expenses/type", "expenses_by_type", "expense_type")]),
        ("SUPERAGENCY_TOTAL_STAFF", "Staff", "FTE", "INSTANT", "ANNUAL", "staff",
         [("metric/superagency/staff/type", "staff_by_type", "staff_type")]),
    ]


def test_key_with_space(registry: Registry) -> None:
    assert "PROSECUTION_CASES REFERRED" in registry.metrics
    assert "PROSECUTION_CASES_REFERRED" not in registry.metrics


def test_v2_renames(registry: Registry) -> None:
    renamed = {m.key: m.v2_key for m in registry.metrics.values() if m.v2_key}
    assert renamed == {
        "PROSECUTION_CASES REFERRED": "PROSECUTION_CASES_REFERRED",
        "SUPERVISION_SUPERVISION_TERMINATIONS": "SUPERVISION_DISCHARGES",
        "SUPERVISION_SUPERVISION_VIOLATIONS": "SUPERVISION_VIOLATIONS",
    }


@pytest.mark.parametrize(("key", "upstream", "ours"), [
    ("SUPERVISION_CASELOADS_PEOPLE", "Full-time Equivalents", "count"),
    ("SUPERVISION_CASELOADS_STAFF", "Cases per Officer", "FTE"),
    ("PROSECUTION_CASES REFERRED", "Cases per Attorney", "count"),
])
def test_mislabelled_units_corrected_with_note(registry: Registry, key: str, upstream: str, ours: str) -> None:
    m = registry.metrics[key]
    assert (m.reference_unit, m.unit) == (upstream, ours)
    assert any(upstream in note for note in m.notes)


def test_units_follow_our_rule(registry: Registry) -> None:
    for m in registry.metrics.values():
        kind = m.key.removeprefix(m.sector + "_")
        if kind in ("FUNDING", "EXPENSES"):
            assert m.unit == "USD", m.key
        elif kind in ("TOTAL_STAFF", "CASELOADS_STAFF"):
            assert m.unit == "FTE", m.key
        else:
            assert m.unit == "count", m.key


def test_money_measurement_type_inconsistency_is_noted(registry: Registry) -> None:
    for sector in TIER1_SECTORS:
        for kind in ("FUNDING", "EXPENSES"):
            assert any("§9.3" in note for note in registry.metrics[f"{sector}_{kind}"].notes), (sector, kind)


@pytest.mark.parametrize("sector", ["PROSECUTION", "DEFENSE", "SUPERVISION", *SUPERVISION_SUBSYSTEMS])
def test_caseload_ratio(registry: Registry, sector: str) -> None:
    people = registry.metrics[f"{sector}_CASELOADS_PEOPLE"]
    staff = registry.metrics[f"{sector}_CASELOADS_STAFF"]
    assert (people.ratio_role, people.ratio_partner) == ("numerator", staff.key)
    assert (staff.ratio_role, staff.ratio_partner) == ("denominator", people.key)
    assert (people.display_name.split(" (")[0], people.unit) == ("Open Cases", "count")
    assert (staff.display_name.split(" (")[0], staff.unit) == ("Staff with Caseload", "FTE")


def test_only_caseload_metrics_have_ratio_roles(registry: Registry) -> None:
    with_role = {m.key for m in registry.metrics.values() if m.ratio_role}
    assert len(with_role) == 2 * 7


# ---- breakdown columns and sheetless breakdowns ------------------------------------------------------------------


@pytest.mark.parametrize(("key", "identifier", "sheet", "column"), [
    ("PROSECUTION_CASELOADS_PEOPLE", "metric/severity/prosecution_defense/type", "open_cases_by_type", "case_severity"),
    ("DEFENSE_CASELOADS_PEOPLE", "metric/severity/prosecution_defense/type", "open_cases_by_type", "severity_type"),
    ("JAILS_GRIEVANCES_UPHELD", "metric/jails/grievances/type", "grievances_upheld_by_type", "grievances_upheld_type"),
    ("PRISONS_GRIEVANCES_UPHELD", "metric/prisons/grievances/type", "grievances_upheld_by_type", "grievances_type"),
    ("PRISONS_ADMISSIONS", OFFENSE, "admissions_by_type", "admission_type"),
    ("SUPERVISION_SUPERVISION_STARTS", OFFENSE, "new_cases_by_type", "case_type"),
    ("SUPERVISION_POPULATION", "metric/supervision/daily_population/type", "population_by_type", "supervision_type"),
    ("JAILS_TOTAL_ADMISSIONS", OFFENSE, "total_admissions_by_type", "offense_type"),
])
def test_odd_breakdown_columns(registry: Registry, key: str, identifier: str, sheet: str, column: str) -> None:
    bd = registry.metrics[key].breakdown(identifier)
    assert (bd.sheet, bd.column) == (sheet, column)


def test_behavioral_health_breakdowns_have_no_sheet(registry: Registry) -> None:
    with_bh = [m.key for m in registry.metrics_for("JAILS") if any(
        b.dimension.identifier == BEHAVIORAL_HEALTH for b in m.breakdowns)]
    assert len(with_bh) == 9
    for key in with_bh:
        bd = registry.metrics[key].breakdown(BEHAVIORAL_HEALTH)
        assert (bd.sheet, bd.column, bd.legacy_sheets, bd.required) == (None, None, (), False)
    releases = registry.metrics["JAILS_TOTAL_RELEASES"]
    assert [b.dimension.identifier for b in releases.breakdowns] == [BEHAVIORAL_HEALTH]
    assert [name for name, t in registry.sheet_targets("JAILS").items() if t.metric is releases] == ["total_releases"]


def test_gender_is_a_legacy_column_for_biological_sex(registry: Registry) -> None:
    sex_breakdowns = [b for m in registry.metrics.values() for b in m.breakdowns
                      if b.dimension.identifier == BIOLOGICAL_SEX]
    assert sex_breakdowns and all(b.legacy_columns == ("gender",) for b in sex_breakdowns)
    assert all(b.column == "biological_sex" for b in sex_breakdowns)


# ---- sheet resolution (canonical + legacy) ------------------------------------------------------------------------


@pytest.mark.parametrize(("sector", "sheet", "key", "identifier"), [
    ("LAW_ENFORCEMENT", "annual_budget", "LAW_ENFORCEMENT_FUNDING", None),
    ("LAW_ENFORCEMENT", "police_officers", "LAW_ENFORCEMENT_TOTAL_STAFF", None),
    ("LAW_ENFORCEMENT", "civilian_complaints_sustained", "LAW_ENFORCEMENT_COMPLAINTS_SUSTAINED", None),
    ("LAW_ENFORCEMENT", "officer_use_of_force_incidents", "LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS", None),
    ("LAW_ENFORCEMENT", "arrests_by_gender", "LAW_ENFORCEMENT_ARRESTS", BIOLOGICAL_SEX),
    ("LAW_ENFORCEMENT", "arrests_by_offense_type", "LAW_ENFORCEMENT_ARRESTS", OFFENSE),
    ("LAW_ENFORCEMENT", "arrests_by_race", "LAW_ENFORCEMENT_ARRESTS", RACE_AND_ETHNICITY),
    ("PROSECUTION", "annual_budget", "PROSECUTION_FUNDING", None),
    ("PROSECUTION", "caseloads", "PROSECUTION_CASELOADS_PEOPLE", None),
    ("PROSECUTION", "caseloads_by_severity", "PROSECUTION_CASELOADS_PEOPLE",
     "metric/severity/prosecution_defense/type"),
    ("PROSECUTION", "cases_rejected", "PROSECUTION_CASES_DECLINED", None),
    ("PROSECUTION", "cases_rejected_by_gender", "PROSECUTION_CASES_DECLINED", BIOLOGICAL_SEX),
    ("PROSECUTION", "cases_declined_by_gender", "PROSECUTION_CASES_DECLINED", BIOLOGICAL_SEX),
    ("PROSECUTION", "cases_rejected_by_race", "PROSECUTION_CASES_DECLINED", RACE_AND_ETHNICITY),
    ("PROSECUTION", "cases_rejected_by_raceethnicity", "PROSECUTION_CASES_DECLINED", RACE_AND_ETHNICITY),
    ("PROSECUTION", "cases_rejected_by_severity", "PROSECUTION_CASES_DECLINED",
     "metric/declined/severity/prosecution/type"),
    ("PROSECUTION", "cases_referred", "PROSECUTION_CASES REFERRED", None),
    ("PRISONS", "annual_budget", "PRISONS_FUNDING", None),
    ("PRISONS", "total_staff", "PRISONS_TOTAL_STAFF", None),
    ("PRISONS", "total_staff_by_type", "PRISONS_TOTAL_STAFF", "metric/prisons/staff/type"),
    ("PRISONS", "average_daily_population", "PRISONS_POPULATION", None),
    ("PRISONS", "population_by_gender", "PRISONS_POPULATION", BIOLOGICAL_SEX),
    ("PRISONS", "average_daily_population_gender", "PRISONS_POPULATION", BIOLOGICAL_SEX),
    ("PRISONS", "average_daily_population_race", "PRISONS_POPULATION", RACE_AND_ETHNICITY),
    ("PRISONS", "average_daily_population_by_type", "PRISONS_POPULATION", OFFENSE),
    ("PRISONS", "staff_use_of_force_incidents", "PRISONS_USE_OF_FORCE_INCIDENTS", None),
    ("PRISONS", "readmission_rate", "PRISONS_READMISSIONS", None),
    ("SUPERVISION", "annual_budget", "SUPERVISION_FUNDING", None),
    ("PAROLE", "annual_budget", "PAROLE_FUNDING", None),
    ("PROBATION", "population_by_type", "PROBATION_POPULATION", "metric/supervision/daily_population/type"),
    ("SUPERAGENCY", "staff_by_type", "SUPERAGENCY_TOTAL_STAFF", "metric/superagency/staff/type"),
])
def test_sheet_targets(registry: Registry, sector: str, sheet: str, key: str, identifier: str | None) -> None:
    target = registry.sheet_targets(sector)[sheet]
    assert target.metric.key == key
    assert (target.breakdown.dimension.identifier if target.breakdown else None) == identifier


def test_sheet_targets_cover_every_canonical_sheet(registry: Registry) -> None:
    for sector in SYSTEM_CODES:
        targets = registry.sheet_targets(sector)
        for m in registry.metrics_for(sector):
            assert targets[m.sheet].metric is m and targets[m.sheet].breakdown is None
            for bd in m.breakdowns:
                if bd.sheet:
                    assert targets[bd.sheet].breakdown is bd
        assert all(normalize_sheet_name(name) == name for name in targets)


def test_dropped_prison_use_of_force_breakdown_has_no_target(registry: Registry) -> None:
    assert "use_of_force_by_type" not in registry.sheet_targets("PRISONS")
    assert "use_of_force_by_type" in registry.sheet_targets("LAW_ENFORCEMENT")


@pytest.mark.parametrize(("raw_name", "normalized"), [
    (" releases", "releases"),
    ("Arrests By Type", "arrests_by_type"),
    ("prison/releases_by_type.csv", "releases_by_type"),
])
def test_normalize_sheet_name(raw_name: str, normalized: str) -> None:
    assert normalize_sheet_name(raw_name) == normalized


def test_unknown_system_code_is_rejected(registry: Registry) -> None:
    with pytest.raises(KeyError, match="CORRECTIONS"):
        registry.sheet_targets("CORRECTIONS")
    with pytest.raises(KeyError):
        registry.metrics_for("supervision")


# ---- supervision subsystem clones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("subsystem", "suffix"), [
    ("PAROLE", "Parole"),
    ("PROBATION", "Probation"),
    ("PRETRIAL_SUPERVISION", "Pretrial Supervision"),
    ("OTHER_SUPERVISION", "Other Supervision"),
])
def test_subsystem_clones(registry: Registry, subsystem: str, suffix: str) -> None:
    for base in registry.metrics_for("SUPERVISION"):
        clone = registry.metrics[registry.subsystem_key(base.key, subsystem)]
        assert clone.sector == subsystem and clone.parent_sector == "SUPERVISION"
        assert clone.display_name == f"{base.display_name} ({suffix})"
        assert clone.breakdowns == base.breakdowns
        assert (clone.sheet, clone.legacy_sheets) == (base.sheet, base.legacy_sheets)
        assert (clone.unit, clone.reference_unit, clone.measurement_type, clone.default_frequency,
                clone.category) == (base.unit, base.reference_unit, base.measurement_type,
                                    base.default_frequency, base.category)
    assert set(registry.sheet_targets(subsystem)) == set(registry.sheet_targets("SUPERVISION"))


def test_subsystem_keys_and_display_names(registry: Registry) -> None:
    assert registry.subsystem_key("SUPERVISION_FUNDING", "PAROLE") == "PAROLE_FUNDING"
    assert registry.metrics["PROBATION_POPULATION"].display_name == "Daily Population (Probation)"
    assert registry.metrics["PRETRIAL_SUPERVISION_POPULATION"].display_name == \
        "Daily Population (Pretrial Supervision)"
    assert registry.metrics["PRETRIAL_SUPERVISION_SUPERVISION_STARTS"].display_name == \
        "New Cases (Pretrial Supervision)"
    assert "OTHER_SUPERVISION_REVOCATIONS" in registry.metrics
    with pytest.raises(KeyError):
        registry.subsystem_key("PRISONS_FUNDING", "PAROLE")
    with pytest.raises(KeyError):
        registry.subsystem_key("SUPERVISION_FUNDING", "SUPERVISION")


# ---- dimensions -----------------------------------------------------------------------------------------------


def test_dimension_identifiers(registry: Registry) -> None:
    assert sorted(registry.dimensions) == sorted(identifier for identifier, _ in DIMENSION_MEMBERS)


@pytest.mark.parametrize(("identifier", "names"), DIMENSION_MEMBERS, ids=[d[0] for d in DIMENSION_MEMBERS])
def test_dimension_members(registry: Registry, identifier: str, names: str) -> None:
    assert registry.dimensions[identifier].member_names == tuple(names.split())


def test_race_and_ethnicity_members(registry: Registry) -> None:
    races = [
        ("AMERICAN_INDIAN_ALASKAN_NATIVE", "American Indian or Alaska Native"),
        ("ASIAN", "Asian"),
        ("BLACK", "Black"),
        ("MORE_THAN_ONE_RACE", "More than one race"),
        ("NATIVE_HAWAIIAN_PACIFIC_ISLANDER", "Native Hawaiian or Pacific Islander"),
        ("WHITE", "White"),
        ("OTHER", "Other"),
        ("UNKNOWN", "Unknown"),
    ]
    ethnicities = [
        ("HISPANIC", "Hispanic or Latino"),
        ("NOT_HISPANIC", "Not Hispanic or Latino"),
        ("UNKNOWN_ETHNICITY", "Unknown Ethnicity"),
    ]
    members = registry.dimensions[RACE_AND_ETHNICITY].members
    assert [(m.name, m.display, m.race, m.ethnicity) for m in members] == [
        (f"{eth}_{race}", f"{race_display} / {eth_display}", race, eth)
        for eth, eth_display in ethnicities for race, race_display in races
    ]
    dim = registry.dimensions[RACE_AND_ETHNICITY]
    assert dim.member("NOT_HISPANIC_BLACK").display == "Black / Not Hispanic or Latino"
    assert dim.member("UNKNOWN_ETHNICITY_UNKNOWN").display == "Unknown / Unknown Ethnicity"
    assert dim.member("HISPANIC_AMERICAN_INDIAN_ALASKAN_NATIVE").display == \
        "American Indian or Alaska Native / Hispanic or Latino"


@pytest.mark.parametrize(("identifier", "displays"), [
    (BIOLOGICAL_SEX, ["Male Biological Sex", "Female Biological Sex", "Unknown Biological Sex"]),
    (OFFENSE, ["Person Offenses", "Property Offenses", "Drug Offenses", "Public Order Offenses", "Other Offenses",
               "Unknown Offenses"]),
    ("metric/superagency/funding/type", ["State Appropriations", "County or Municipal Appropriations", "Grants",
                                         "Other Funding", "Unknown Funding"]),
    ("metric/superagency/expenses/type", ["Personnel", "Training", "Facilities and Equipment", "Other Expenses",
                                          "Unknown Expenses"]),
    ("metric/superagency/staff/type", ["Filled Positions (Any Staff Type)", "Vacant Positions (Any Staff Type)"]),
    ("global/race/census", ["American Indian or Alaska Native", "Asian", "Black", "More than one race",
                            "Native Hawaiian or Pacific Islander", "Other", "White", "Unknown",
                            "Hispanic or Latino"]),
    ("metric/jails/grievances/type", ["Living Conditions", "Personal Safety",
                                      "Discrimination, Racial Bias, or Religious Practices", "Access to Health Care",
                                      "Legal", "Other Grievance", "Unknown Grievance"]),
    (BEHAVIORAL_HEALTH, ["Mental Health Needs", "Substance Use Needs",
                         "Co-Occurring Substance Use and Mental Health Needs", "Other Behavioral Health Needs",
                         "Unknown Behavioral Health Needs", "No Behavioral Health Needs"]),
])
def test_dimension_displays(registry: Registry, identifier: str, displays: list[str]) -> None:
    assert [m.display for m in registry.dimensions[identifier].members] == displays


def test_shared_dimensions_are_one_object(registry: Registry) -> None:
    arrests = registry.metrics["LAW_ENFORCEMENT_ARRESTS"].breakdown(OFFENSE).dimension
    new_cases = registry.metrics["SUPERVISION_SUPERVISION_STARTS"].breakdown(OFFENSE).dimension
    assert arrests is new_cases is registry.dimensions[OFFENSE]
    assert registry.dimensions["metric/prisons/grievances/type"].members == \
        registry.dimensions["metric/jails/grievances/type"].members


def test_lookups_raise_key_error(registry: Registry) -> None:
    with pytest.raises(KeyError):
        registry.dimensions[OFFENSE].member("VIOLENT")
    with pytest.raises(KeyError):
        registry.metrics["PRISONS_USE_OF_FORCE_INCIDENTS"].breakdown(OFFENSE)


# ---- validator --------------------------------------------------------------------------------------------------


def test_packaged_data_validates(raw: dict) -> None:
    assert len(validate(raw).metrics) == 117


def test_rejects_duplicate_key(raw: dict) -> None:
    raw["metrics"].append(copy.deepcopy(_metric_entry(raw, "JAILS_READMISSIONS")))
    with pytest.raises(RegistryError, match=r"metric 'JAILS_READMISSIONS': duplicate metric key"):
        validate(raw)


def test_rejects_unknown_dimension(raw: dict) -> None:
    _metric_entry(raw, "LAW_ENFORCEMENT_ARRESTS")["breakdowns"][0]["dimension"] = "metric/offence/type"
    with pytest.raises(RegistryError, match=r"metric 'LAW_ENFORCEMENT_ARRESTS' breakdown 'metric/offence/type': "
                                            r"unknown dimension"):
        validate(raw)


def test_rejects_bad_unit(raw: dict) -> None:
    _metric_entry(raw, "PRISONS_FUNDING")["unit"] = "dollars"
    with pytest.raises(RegistryError, match=r"metric 'PRISONS_FUNDING': unit 'dollars' is not one of"):
        validate(raw)


@pytest.mark.parametrize(("field", "value"), [
    ("measurement_type", "AVERAGE"),
    ("default_frequency", "QUARTERLY"),
    ("category", "CAPACITY_AND_COST"),
    ("sector", "CORRECTIONS"),
])
def test_rejects_values_outside_allowed_sets(raw: dict, field: str, value: str) -> None:
    _metric_entry(raw, "PRISONS_RELEASES")[field] = value
    with pytest.raises(RegistryError, match=rf"metric 'PRISONS_RELEASES': {field} '{value}' is not one of"):
        validate(raw)


def test_rejects_duplicate_sheet_name_within_sector(raw: dict) -> None:
    _metric_entry(raw, "PRISONS_RELEASES")["legacy_sheets"] = ["readmissions"]
    with pytest.raises(RegistryError, match=r"sheet name 'readmissions' is already used in PRISONS") as excinfo:
        validate(raw)
    assert "PRISONS_RELEASES" in str(excinfo.value) and "PRISONS_READMISSIONS" in str(excinfo.value)


def test_same_sheet_name_in_different_sectors_is_fine(raw: dict) -> None:
    assert validate(raw).sheet_targets("JAILS")["readmissions"].metric.key == "JAILS_READMISSIONS"


def test_rejects_missing_sheets(raw: dict) -> None:
    del _metric_entry(raw, "JAILS_USE_OF_FORCE_INCIDENTS")["sheet"]
    del _metric_entry(raw, "JAILS_TOTAL_ADMISSIONS")["breakdowns"][0]["column"]
    with pytest.raises(RegistryError) as excinfo:
        validate(raw)
    message = str(excinfo.value)
    assert "metric 'JAILS_USE_OF_FORCE_INCIDENTS': 'sheet' must be a non-empty string" in message
    assert "metric 'JAILS_TOTAL_ADMISSIONS' breakdown 'metric/offense/type': 'column' must be" in message


def test_rejects_sheetless_breakdown_with_sheet(raw: dict) -> None:
    _metric_entry(raw, "JAILS_TOTAL_RELEASES")["breakdowns"][0]["sheet"] = "total_releases_by_type"
    with pytest.raises(RegistryError, match=r"'JAILS_TOTAL_RELEASES' breakdown 'metric/jails/behavioral_health/"
                                            r"type': a sheetless breakdown cannot have sheets"):
        validate(raw)


def test_rejects_unnormalized_sheet_name(raw: dict) -> None:
    _metric_entry(raw, "PRISONS_RELEASES")["sheet"] = " Releases"
    with pytest.raises(RegistryError, match=r"'PRISONS_RELEASES': sheet name ' Releases' is not normalized"):
        validate(raw)


def test_rejects_bad_members(raw: dict) -> None:
    offense = next(d for d in raw["dimensions"] if d["identifier"] == OFFENSE)
    offense["members"].append({"name": "PERSON", "display": "Violent Offenses"})
    offense["members"].append({"name": "Weapons", "display": "Weapons Offenses"})
    offense["members"].append({"name": "ARSON", "display": ""})
    with pytest.raises(RegistryError) as excinfo:
        validate(raw)
    message = str(excinfo.value)
    assert "dimension 'metric/offense/type': duplicate member NAME 'PERSON'" in message
    assert "dimension 'metric/offense/type': member NAME 'Weapons' is not UPPER_SNAKE_CASE" in message
    assert "'display' must be a non-empty string" in message


def test_rejects_unknown_field(raw: dict) -> None:
    _metric_entry(raw, "PRISONS_POPULATION")["legacy_sheet"] = ["average_daily_population"]
    with pytest.raises(RegistryError, match=r"unknown field 'legacy_sheet'"):
        validate(raw)


def test_rejects_hand_written_subsystem_metric(raw: dict) -> None:
    entry = copy.deepcopy(_metric_entry(raw, "SUPERVISION_FUNDING"))
    entry.update(key="PAROLE_FUNDING", sector="PAROLE")
    raw["metrics"].append(entry)
    with pytest.raises(RegistryError, match=r"metric 'PAROLE_FUNDING': sector 'PAROLE' is not one of"):
        validate(raw)


def test_rejects_one_sided_ratio(raw: dict) -> None:
    _metric_entry(raw, "DEFENSE_CASELOADS_STAFF")["ratio_partner"] = "DEFENSE_TOTAL_STAFF"
    with pytest.raises(RegistryError, match=r"metric 'DEFENSE_CASELOADS_STAFF': ratio_partner "
                                            r"'DEFENSE_TOTAL_STAFF' must point back"):
        validate(raw)
