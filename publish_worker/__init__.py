"""The publish worker: RQ jobs on queue ``meta-publish`` that publish due posts to the Page and Instagram."""
