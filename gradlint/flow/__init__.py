"""The flow profile: one mean-field propagation pass over a layer graph.

``profile(graph)`` predicts, at initialization and in the measurement convention of
:mod:`gradlint.flow.convention`, the forward statistics of every node, the backward
statistics of the gradient at every node's output, and each weighted layer's weight-gradient
norm. Rules judge this one profile (:mod:`gradlint.flow.hazards`); ``--dynamic`` measures the
same quantities and judges them with the same tests.
"""
