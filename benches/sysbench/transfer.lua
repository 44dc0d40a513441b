-- The transaction crashlab's MariaDB driver runs, for sysbench: move an
-- amount between two of 100 accounts (in id order, as the driver does) and
-- insert a ledger row with a unique id, in one transaction.
function thread_init()
  con = sysbench.sql.driver():connect()
  seq = 0
  -- Above any id crashlab's own clients use (client number << 40).
  base = (1000 + sysbench.tid) * 1099511627776
end

function event()
  seq = seq + 1
  local src = sysbench.rand.uniform(0, 99)
  local dst = sysbench.rand.uniform(0, 98)
  if dst >= src then dst = dst + 1 end
  local amount = sysbench.rand.uniform(1, 100)
  local first, first_delta, second, second_delta = src, -amount, dst, amount
  if first > second then
    first, first_delta, second, second_delta = dst, amount, src, -amount
  end
  con:query("BEGIN")
  con:query(string.format("UPDATE accounts SET balance = balance + %d WHERE id = %d", first_delta, first))
  con:query(string.format("UPDATE accounts SET balance = balance + %d WHERE id = %d", second_delta, second))
  con:query(string.format("INSERT INTO ledger (id, src, dst, amount) VALUES (%d, %d, %d, %d)",
    base + seq, src, dst, amount))
  con:query("COMMIT")
end
