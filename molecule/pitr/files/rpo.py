# molecule pitr, run on the controller: the RPO from the writer's journal ("n epoch" per acknowledged
# commit). argv: journal, the last row recovered, the epoch of the switch of test (a), the last row
# recovered by test (a). Prints JSON.
import json
import sys

journal, last_recovered, switched_at, a_max = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = [(int(n), float(at)) for n, at in (line.split() for line in open(journal) if line.strip())]
at = dict(rows)
lost = [n for n, _at in rows if n > last_recovered]
print(json.dumps({
    "last_recovered": last_recovered,
    "last_acknowledged": rows[-1][0],
    "rows_lost": len(lost),
    "rpo_s": round(rows[-1][1] - at[last_recovered], 3) if lost else 0.0,
    # Acknowledged after the switch of test (a): the rows of the timeline db1 ran on when it died.
    "journal_after_switch": [n for n, t in rows if t > switched_at and a_max < n <= last_recovered],
}))
