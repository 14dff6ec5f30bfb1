# Types for the compiled build of queueing_policy.py (see setup.py): the decider as an
# extension type with typed fields, its arithmetic in C doubles and integers.
import cython

cdef class QueueingPolicy:
    cdef public object config, in_flight_signal, service_time_signal, lookahead, drain
    cdef public list required
    cdef public str arrival_signal, queue_signal, wait_bound, utilization_bound, per_replica
    cdef public double service_seconds, level_smoothing, trend_smoothing, wait_slo
    cdef public double max_wait_probability, max_utilization
    cdef public Py_ssize_t slots_per_replica

    @cython.locals(rate=double, queue=double, in_flight=double, service=double, startup=double,
                   horizon=double, now=double, level=double, trend=double, ahead=double,
                   planned_rate=double, load=double, wait_slo=double, drain=double,
                   slots_wait=Py_ssize_t, slots_headroom=Py_ssize_t, slots_backlog=Py_ssize_t,
                   slots_in_flight=Py_ssize_t, slots=Py_ssize_t, desired=Py_ssize_t)
    cpdef recommend(self, observation, memory)

@cython.locals(trend=double, dt=double, alpha=double, beta=double, new_level=double,
               new_trend=double)
cpdef tuple forecast(memory, double rate, double now, double level_s, double trend_s)
