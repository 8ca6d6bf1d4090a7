"""The SOLAR-Instruct chat template (Alpaca-styled, docs/reference.md).

`### System:` / `### User:` / `### Assistant:` blocks separated by blank lines. EOS follows every assistant turn
so a model trained on it learns to stop. The `{% generation %}` markers let TRL compute an assistant-only loss
mask (`assistant_only_loss=True`); they render to nothing.
"""

SOLAR_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% if message['content'] %}{{ '### System:\n' + message['content'] + '\n\n' }}{% endif %}"
    "{% elif message['role'] == 'user' %}"
    "{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '### Assistant:\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{{ '\n\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)

ASSISTANT_PREFIX = "### Assistant:\n"
