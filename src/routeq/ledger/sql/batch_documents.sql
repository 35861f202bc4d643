-- Each document of a batch: what it paid (and, of that, its shadow A/B samples), whether its
-- query family escalated, and the tokens of its accepted calls (for the all-top-tier
-- counterfactual).
SELECT document_id, spent, shadow_spent, escalated, top_tier_input_tokens,
       top_tier_output_tokens
FROM batch_document_spend
WHERE batch_id = :batch_id
