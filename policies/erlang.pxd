# Types for the compiled build of erlang.py (see setup.py): the recursion in C doubles.
import cython

@cython.locals(inv=double, stable_from=Py_ssize_t, reciprocal=double, kf=double, tail=double,
               step=double, reject=double, k=Py_ssize_t, blocking=double, waiting=double)
cpdef Py_ssize_t servers_for_wait(double offered_load, double wait_over_service,
                                  double max_wait_probability, Py_ssize_t max_servers)
