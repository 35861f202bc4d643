-- What a batch paid: every query registered for its documents, parts and failures included.
SELECT spent, shadow_spent FROM batch_spend WHERE batch_id = :batch_id
