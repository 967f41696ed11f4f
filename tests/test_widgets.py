"Chapter 08: the augmentation explorer (in test_augmentation.py) and the teacher / student / no-KD explorer, without a browser."
import numpy as np
import pytest

from bilstm_kd.core import UserError
from bilstm_kd.tokenization import Vocab
from bilstm_kd.widgets import Explorer, outcome_masks, unk_words


def fake_teacher(xs): return np.array([[0.1, 0.9] if 'good' in str(x) else [0.8, 0.2] for x in xs])
def fake_student(xs): return np.array([[0.3, 0.7] if 'great' in str(x) else [0.6, 0.4] for x in xs])
def fake_baseline(xs): return np.tile([0.4, 0.6], (len(xs), 1))
TWO = {'teacher': fake_teacher, 'student': fake_student}
THREE = {**TWO, 'no-KD': fake_baseline}


def test_explorer_typing_updates_bars_and_unk():
    ex = Explorer(TWO, ('negative', 'positive'), Vocab.build([['great', 'film']]))
    assert ex.text.description == 'Sentence' and ex.text.placeholder == 'Type a sentence and press Enter'
    assert ex.fig is None and ex.bars.outputs == ()
    ex.text.value = 'a good film'
    np.testing.assert_allclose(ex.fig.data[0].y, [0.1, 0.9]); np.testing.assert_allclose(ex.fig.data[2].y, [0.6, 0.4])
    np.testing.assert_allclose(ex.fig.data[1].y, np.log([0.1, 0.9]) - np.log([0.1, 0.9]).mean(), atol=1e-6)  # centred logits
    assert len(ex.bars.outputs) == 1 and 'text/html' in ex.bars.outputs[0]['data']
    assert '<code>a</code>, <code>good</code>' in ex.unk.value
    first = ex.bars.outputs
    ex.text.value = 'great film'
    np.testing.assert_allclose(ex.fig.data[2].y, [0.3, 0.7])
    assert ex.bars.outputs != first and 'none' in ex.unk.value
    assert ex.fig.data[0].name == 'teacher: negative' and ex.fig.data[2].name == 'student: positive'
    ex.text.value = ''
    assert ex.fig is None and ex.bars.outputs == ()


def test_three_way_explorer_shows_where_kd_helped_and_hurt():
    dev, y = ['good film', 'great film', 'good and great', 'bad film', 'a good one', 'dull'], [1, 1, 1, 0, 0, 1]
    ex = Explorer(THREE, ('negative', 'positive'), None, dev, y, page_size=2)
    ex.text.value = 'good'
    assert len(ex.fig.data) == 6 and {d.legendgroup for d in ex.fig.data} == set(THREE)
    assert ex.outcome.value.startswith('KD helped') and 'no-KD' in ex.table.value
    assert np.flatnonzero(ex.masks[ex.outcome.value]).tolist() == [3, 4]
    ex.outcome.value = 'KD hurt (student wrong, no-KD right)'
    assert np.flatnonzero(ex.masks[ex.outcome.value]).tolist() == [0, 5] and 'dull' in ex.table.value
    ex.outcome.value = 'all'
    ex.next.click(); ex.next.click(); ex.next.click()
    assert 'page 3 of 3' in ex.page_label.value and 'a good one' in ex.table.value and 'good film' not in ex.table.value
    ex.prev.click()
    assert ex.page == 1


def test_outcomes_without_a_baseline():
    m = outcome_masks([1, 1, 0], {'t': np.eye(2)[[1, 0, 0]], 's': np.eye(2)[[0, 1, 0]]})
    assert list(m) == ['teacher right, student wrong', 'student right, teacher wrong', 'both right', 'both wrong', 'all']
    assert m['teacher right, student wrong'].tolist() == [True, False, False] and m['both right'].tolist() == [False, False, True]


def test_explorer_errors():
    with pytest.raises(UserError, match='one gold label per dev text'):
        Explorer(TWO, ('negative', 'positive'), None, ['a', 'b'], [1])
    with pytest.raises(UserError, match='at least a teacher and a student'):
        Explorer({'teacher': fake_teacher}, ('negative', 'positive'))


def test_explorer_pairs():
    seen = []
    def t(xs): seen.extend(xs); return np.tile([0.2, 0.8], (len(xs), 1))
    ex = Explorer({'teacher': t, 'student': t}, ('no', 'yes'), Vocab.build([['what', 'is']]), [('a', 'b')], [1])
    assert ex.pair and ex.text_b.description == 'Sentence B' and ex.text_b in ex.widget.children
    ex.text_b.value = 'what is it'
    ex.text.value = 'what now'
    assert seen[-1] == ('what now', 'what is it') and ex.fig is not None
    assert '<code>now</code>' in ex.unk.value and '<code>it</code>' in ex.unk.value


def test_unk_words():
    assert unk_words(Vocab.build([['good']]), 'Good, GOOD film film!') == [',', 'film', '!']
