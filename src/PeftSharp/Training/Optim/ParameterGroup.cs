using TorchSharp.Modules;

namespace PeftSharp.Training.Optim;

/// <summary>A trainable parameter and its PEFT in-memory name (<c>base_model.model.….lora_A.default.weight</c>).</summary>
public sealed record NamedParameter(string Name, Parameter Parameter);

/// <summary>
/// Parameters that share hyperparameters (torch's <c>param_groups</c>). The learning rate is relative: the group's lr is
/// the scheduled lr times <see cref="LearningRateScale"/> (1 by default; LoRA+ style methods raise it for one group).
/// </summary>
public sealed class ParameterGroup
{
    private readonly List<NamedParameter> _parameters;

    public ParameterGroup(string name, IEnumerable<NamedParameter> parameters, double weightDecay = 0, double learningRateScale = 1)
    {
        Name = name;
        _parameters = [.. parameters];
        WeightDecay = weightDecay;
        LearningRateScale = learningRateScale;
    }

    /// <summary>A label for logs and errors, e.g. <c>decay</c>, <c>no_decay</c>.</summary>
    public string Name { get; }

    public IReadOnlyList<NamedParameter> Parameters => _parameters;

    /// <summary>Decoupled (AdamW) or L2 (SGD) weight decay coefficient of this group.</summary>
    public double WeightDecay { get; set; }

    /// <summary>Multiplier on the scheduled learning rate.</summary>
    public double LearningRateScale { get; set; }

    internal bool Replace(Parameter old, Parameter replacement)
    {
        var i = _parameters.FindIndex(p => ReferenceEquals(p.Parameter, old));
        if (i < 0)
        {
            return false;
        }
        _parameters[i] = _parameters[i] with { Parameter = replacement };
        return true;
    }

    internal bool Remove(Parameter parameter) => _parameters.RemoveAll(p => ReferenceEquals(p.Parameter, parameter)) > 0;

    internal void Add(NamedParameter parameter) => _parameters.Add(parameter);
}

/// <summary>Ways to split parameters into groups.</summary>
public static class ParameterGroups
{
    /// <summary>
    /// Two groups as transformers' Trainer makes for AdamW: <c>decay</c> (weight decay <paramref name="weightDecay"/>) and
    /// <c>no_decay</c> (0). By default a parameter goes without decay when it is 1-D (biases, norm weights, gates);
    /// <paramref name="noDecay"/> overrides the rule. Empty groups are left out.
    /// </summary>
    public static IReadOnlyList<ParameterGroup> WithDecay(IEnumerable<NamedParameter> parameters, double weightDecay, Func<NamedParameter, bool>? noDecay = null)
    {
        noDecay ??= p => p.Parameter.dim() < 2;
        var all = parameters.ToList();
        var groups = new List<ParameterGroup>();
        var decay = all.Where(p => !noDecay(p)).ToList();
        var rest = all.Where(noDecay).ToList();
        if (decay.Count > 0)
        {
            groups.Add(new ParameterGroup("decay", decay, weightDecay));
        }
        if (rest.Count > 0)
        {
            groups.Add(new ParameterGroup("no_decay", rest, 0));
        }
        return groups;
    }

    /// <summary>One group holding every parameter, with <paramref name="weightDecay"/>.</summary>
    public static IReadOnlyList<ParameterGroup> Single(IEnumerable<NamedParameter> parameters, double weightDecay = 0) =>
        [new ParameterGroup("all", parameters, weightDecay)];
}
