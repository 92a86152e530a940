"""Shell completion for podctl, generated from its argparse parser: verbs,
each verb's flags, resource types after get/describe/delete/..., and object
names by asking podctl itself (`podctl get TYPE -o name`). Pure: returns
the script text.
"""

from __future__ import annotations

import argparse

from clients.podctl.kinds import RESOURCES

_TYPED_VERBS = ("get", "describe", "delete", "label", "annotate", "scale", "wait", "rollout")


def _verbs(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                flags = sorted(
                    {opt for a in sub._actions for opt in a.option_strings if opt.startswith("--")}
                )
                out[name] = flags
    return out


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    verbs = _verbs(parser)
    types = sorted(
        {r.plural for r in RESOURCES} | {s for r in RESOURCES for s in r.short} | {"all"}
    )
    cases = "\n".join(
        f'        {verb}) flags="{" ".join(flags)}" ;;' for verb, flags in sorted(verbs.items())
    )
    bash = f"""# podctl bash completion. Load with: source <(podctl completion bash)
_podctl() {{
    local cur prev verb flags types
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    verb="${{COMP_WORDS[1]}}"
    types="{" ".join(types)}"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=( $(compgen -W "{" ".join(sorted(verbs))}" -- "$cur") )
        return
    fi
    case "$verb" in
{cases}
        *) flags="" ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "$flags" -- "$cur") )
        return
    fi
    case "$prev" in
        -f|--filename) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
        -o|--output) COMPREPLY=( $(compgen -W "wide yaml json name" -- "$cur") ); return ;;
        -n|--namespace) return ;;
    esac
    case "$verb" in
        {"|".join(_TYPED_VERBS)})
            local first="${{COMP_WORDS[2]}}"
            [[ "$verb" == rollout ]] && first="${{COMP_WORDS[3]}}"
            if [[ "$verb" == rollout && $COMP_CWORD -eq 2 ]]; then
                COMPREPLY=( $(compgen -W "status history undo restart pause resume" -- "$cur") )
            elif [[ ( "$verb" != rollout && $COMP_CWORD -eq 2 ) || ( "$verb" == rollout && $COMP_CWORD -eq 3 ) ]]; then
                COMPREPLY=( $(compgen -W "$types" -- "$cur") )
            else
                local names
                names=$(podctl get "$first" -o name 2>/dev/null | sed 's|.*/||')
                COMPREPLY=( $(compgen -W "$names" -- "$cur") )
            fi ;;
        logs|exec|debug|trace)
            local names
            names=$(podctl get pods -o name 2>/dev/null | sed 's|.*/||')
            COMPREPLY=( $(compgen -W "$names" -- "$cur") ) ;;
        cordon|uncordon|drain)
            local names
            names=$(podctl get nodes -o name 2>/dev/null | sed 's|.*/||')
            COMPREPLY=( $(compgen -W "$names" -- "$cur") ) ;;
        completion) COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ) ;;
    esac
}}
complete -F _podctl podctl
"""
    if shell == "bash":
        return bash
    return (
        "#compdef podctl\n# podctl zsh completion: source <(podctl completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n"
        + bash
    )
