# Types for the compiled build of cluster.py (Cython "augmenting" declarations; see setup.py).
# The .py stays the one source: without a compiler it runs as it is. Every attribute the
# classes set must be declared here, with the type it always holds.

import cython

cdef class Replica:
    cdef public Py_ssize_t id
    cdef public double created, ready_at
    cdef public Py_ssize_t busy
    cdef public bint draining, listed, up
    cdef public object ended

cdef class Cluster:
    cdef public list arr, dur, units, start, pending_ready, completions, free
    cdef public dict replicas
    cdef public object queue, recent_service, snapshots, _capacity
    cdef public bint unit_one, fast, measure_busy
    cdef public Py_ssize_t per, live_count, up_count, next_id, next_arrival
    cdef public Py_ssize_t queued_units, busy_units, running, ready_units
    cdef public double startup, rate_window, service_window, delay
    cdef public double clock, busy_area, ready_area, billed_seconds, done_service, recent_sum
    cdef public double _last_busy_area, _last_ready_area, _window_from
    cdef public Py_ssize_t _window_count

    cpdef _integrate(self, double t)
    cpdef capacity(self)
    cpdef dict signals(self, double t)

    @cython.locals(arrived=Py_ssize_t, window=double, span=double, rate=double,
                   busy_da=double, ready_da=double, cutoff=double, total=double, queue=double,
                   running=double, busy=Py_ssize_t, r=Replica, start=double,
                   before=Py_ssize_t, n=Py_ssize_t, arr=list)
    cpdef dict _measure(self, double t)
