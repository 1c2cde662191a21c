using TorchSharp.Modules;

namespace PeftSharp.Core;

// Parameter naming and accounting (PEFT's get_nb_trainable_parameters / print_trainable_parameters).
public sealed partial class PeftModel
{
    /// <summary>PEFT's in-memory parameter names: <c>base_model.model.&lt;path&gt;</c>.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters() =>
        Model.named_parameters().Select(p => (NamePrefix + p.name, p.parameter));

    public IEnumerable<Parameter> TrainableParameters() => Model.parameters().Where(p => p.requires_grad);

    /// <summary>Trainable and total element counts, as PEFT's <c>get_nb_trainable_parameters</c>.</summary>
    public (long Trainable, long Total) ParameterCounts()
    {
        long trainable = 0, total = 0;
        foreach (var p in Model.parameters())
        {
            total += p.numel();
            if (p.requires_grad)
            {
                trainable += p.numel();
            }
        }
        return (trainable, total);
    }

    /// <summary>The line PEFT's <c>print_trainable_parameters</c> prints.</summary>
    public string TrainableParametersSummary()
    {
        var (t, a) = ParameterCounts();
        var pct = a == 0 ? 0 : 100.0 * t / a;
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"trainable params: {t:N0} || all params: {a:N0} || trainable%: {pct:F4}");
    }
}
