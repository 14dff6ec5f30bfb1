# Types for the compiled build of adapters.py (see setup.py): the simulator's signal source
# and provider as extension types over the compiled cluster.
import cython
from autoscaler.sim.cluster cimport Cluster

cdef class ClusterSignals:
    cdef public Cluster cluster
    cdef public object _at, _asked
    cdef public dict _values
    cdef public list _keys

    @cython.locals(values=dict, out=dict)
    cpdef dict read(self, requests, double now)

cdef class ClusterProvider:
    cdef public Cluster cluster
    cdef public set applied
    cdef public Py_ssize_t actions
