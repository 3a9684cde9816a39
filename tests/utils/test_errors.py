"""InputError: one line, also when PyTorch raises it again from a DataLoader worker."""
import pytest
import torch

from mmrepmlp.utils.errors import InputError


class FailingDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise InputError('/data/train.rec: record 3 at byte 40: corrupt; pack it again')


def test_an_input_error_from_a_dataloader_worker_keeps_its_one_line_message():
    loader = torch.utils.data.DataLoader(FailingDataset(), num_workers=1)

    with pytest.raises(InputError) as error:
        next(iter(loader))

    assert str(error.value) == ('in a dataloader worker: /data/train.rec: record 3 at byte 40: '
                                'corrupt; pack it again')


def test_messages_become_one_line():
    assert str(InputError('a\n  b\tc')) == 'a b c'
