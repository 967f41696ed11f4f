"Labelling's thread count follows the machine's load shard by shard (labels do not depend on it)."
import numpy as np

from bilstm_kd import core
from bilstm_kd.data import load_task, texts_of
from bilstm_kd.labels import LabelConfig, LogitsCache, teacher_logits
from bilstm_kd.teacher import load_teacher


def test_labelling_takes_a_core_freed_mid_stage(tmp_path, monkeypatch, glue_dir):
    monkeypatch.setattr(core, 'usable_cores', lambda: 2)
    monkeypatch.setattr(core, 'busy_cores_elsewhere', lambda window=0.3: 1.0)   # another job holds a core at the start ...
    readings = iter([0.0, 0.0])                                                  # ... and has ended by the first shard's end
    monkeypatch.setattr(core.CoreMeter, 'others', lambda self: next(readings))
    t = load_teacher(task='sst2')
    texts = texts_of(load_task('sst2', glue_dir, max_train=2100, verbose=False)['train'])
    st = {}
    z = teacher_logits(t, texts, LabelConfig(chunk_size=700), cache=LogitsCache(tmp_path/'cache'), progress=False, stats=st)
    assert st['threads_per_shard'] == [1, 2, 2] and st['threads'] == 2
    again = teacher_logits(t, texts, LabelConfig(chunk_size=700, threads=1), cache=LogitsCache(tmp_path/'other'), progress=False)
    assert np.array_equal(z, again)   # the same shards on one thread throughout: the same bytes
