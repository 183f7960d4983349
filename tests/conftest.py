import torch as th

# Small networks train fastest on one thread on these machines (see README, "Tests").
th.set_num_threads(1)
