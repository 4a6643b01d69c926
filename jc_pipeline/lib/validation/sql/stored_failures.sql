-- Per rule, the stored failing groups of $months (rules of scope "years": of their calendar years, the rows
-- owned_results.sql names) of every agency, and the first $sample_size of them in a fixed order: what a run
-- that re-checked only some agencies reports as the months' verdict.
-- Parameters: $month_rules VARCHAR[], $months DATE[], $year_rules VARCHAR[], $years INTEGER[], $sample_size.
SELECT check_name, count(*) AS failing_groups,
       list({'agency_id': agency_id, 'metric_key': metric_key, 'period_start': period_start,
             'period_end': period_end, 'dimension': dimension, 'category': category, 'observed': observed,
             'expected': expected, 'file_id': file_id, 'sheet': sheet, 'row_number': row_number, 'message': message}
            ORDER BY agency_id, metric_key, period_start, period_end, dimension, category, file_id, sheet,
                     row_number, observed, expected, message)[1:$sample_size] AS sample
FROM validation_results
WHERE (list_contains($month_rules, check_name) AND list_contains($months, period_start))
   OR (list_contains($year_rules, check_name) AND list_contains($years, year(period_start)))
GROUP BY check_name
