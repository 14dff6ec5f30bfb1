# Types for the compiled build of fast_loop.py (see cluster.pxd and setup.py): the loop's
# counters and times as C integers and doubles, replicas as the typed extension class.
import cython
from autoscaler.sim.cluster cimport Cluster, Replica

@cython.locals(n=Py_ssize_t, per=Py_ssize_t, na=Py_ssize_t, item=Py_ssize_t,
               busy_units=Py_ssize_t, ready_units=Py_ssize_t, running=Py_ssize_t,
               queued_units=Py_ssize_t, clock=double, busy_area=double, ready_area=double,
               done_service=double, recent_sum=double, ta=double, tc=double, tr=double,
               tmin=double, dt=double, d=double, end=double, r=Replica, arr=list, dur=list,
               start=list, pending=list, completions=list, free=list, replicas=dict)
cpdef advance_one_unit(Cluster c, double t)
