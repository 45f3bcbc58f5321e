"""The parent side of a run, its orchestration: the request and its plan, the session that starts the worker
processes and handles their events, result rows, run.json, sharding and merging. (Not `run/`: `kbench.run` is the
public function.)"""
