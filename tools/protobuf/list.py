import sys; sys.path.insert(0,'/tmp/pbx')
from gotypes import *

ts = all_types()
pk = {}
for t in ts:
    if kind(t) == 25 and u8(t+20) & 4:
        try: pp = pkgpath(t)
        except Exception: pp='ERR'
        pk.setdefault(pp, []).append(tname(t))
for p in sorted(pk):
    if p.startswith('k8s.io/api/') or 'apimachinery' in p:
        print(p, len(pk[p]))
