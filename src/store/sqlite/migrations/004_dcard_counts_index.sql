-- 004: the tokenization decision counts a card's digital cards by state and
-- by creation time on every request; with state in the index the count reads
-- the index alone instead of every digital card the card ever had.
CREATE INDEX digital_cards_card_state ON digital_cards(issuer_id, card_id, state, created_ms);
