-- crashlab's PostgreSQL transfer (workloads/src/postgres.rs) as a pgbench
-- script: move an amount between two distinct accounts, updating them in id
-- order with the same statements, and insert a ledger row with an id unique
-- across clients (client number above bit 40, the client's own sequence
-- below; run with -D seq=0).
\set src random(0, 99)
\set dst random(0, 98)
\if :dst >= :src
\set dst :dst + 1
\endif
\set amount random(1, 100)
\if :src < :dst
\set first :src
\set first_delta 0 - :amount
\set second :dst
\set second_delta :amount
\else
\set first :dst
\set first_delta :amount
\set second :src
\set second_delta 0 - :amount
\endif
\set seq :seq + 1
\set id :client_id * 1099511627776 + :seq
BEGIN;
UPDATE crashlab.accounts SET balance = balance + :first_delta WHERE id = :first;
UPDATE crashlab.accounts SET balance = balance + :second_delta WHERE id = :second;
INSERT INTO crashlab.ledger (id, src, dst, amount) VALUES (:id, :src, :dst, :amount);
COMMIT;
