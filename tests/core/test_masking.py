from citybase.core.masking import mask_id_number, mask_name, mask_phone


def test_id_numbers_keep_region_and_last_four():
    assert mask_id_number("310104199001011234") == "310104********1234"


def test_phones_keep_prefix_and_last_four():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone(None) is None


def test_names_keep_the_surname_only():
    assert mask_name("张三") == "张*"
    assert mask_name("张三丰") == "张**"
    assert mask_name("欧阳娜娜") == "欧阳**"
