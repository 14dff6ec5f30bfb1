# Types for the compiled build of queueing_policy.py (see setup.py): the decider as an
# extension type with typed fields, its arithmetic in C doubles.
import cython

cdef class QueueingPolicy:
    cdef public object config, in_flight_signal, service_time_signal, lookahead, drain
    cdef public object slots_per_replica  # a Python integer, as the counts below
    cdef public list required
    cdef public str arrival_signal, queue_signal, wait_bound, utilization_bound, per_replica
    cdef public double service_seconds, level_smoothing, trend_smoothing, wait_slo
    cdef public double max_wait_probability, max_utilization

    # Slot and replica counts stay Python integers: an absurd load (a query that reads bytes
    # as requests) must size to a huge count that the planner clamps, not overflow a C one.
    @cython.locals(rate=double, queue=double, in_flight=double, service=double, startup=double,
                   horizon=double, now=double, level=double, trend=double, ahead=double,
                   planned_rate=double, load=double, wait_slo=double, drain=double)
    cpdef recommend(self, observation, memory)

@cython.locals(trend=double, dt=double, alpha=double, beta=double, new_level=double,
               new_trend=double)
cpdef tuple forecast(memory, double rate, double now, double level_s, double trend_s)
