using System.Text.Json;
using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.Diffora;

/// <summary>
/// DiffoRA's search and discretisation, as training hooks of one adapter. Steps 1 … <c>search_steps</c> train the LoRA
/// factors (default optimizer) and the architecture logits (their own AdamW at <c>arch_lr_scale</c> × lr, no decay)
/// together on the training loss: the first-order relaxation. After step <c>search_steps</c>, <see cref="OnSchedule"/>
/// discretises: the top modules by γ become a plain LoRA adapter of the same name (config <c>LORA</c>, targets = the
/// kept module names, <c>diffora_selected_modules</c> / <c>diffora_gates</c> recorded in it) whose A and B start from
/// the searched ones (weight sharing; their optimizer state is kept), with γ dropped (Γ = 1). The other candidates and
/// every logit leave the model and the optimizer.
/// </summary>
public sealed class DifforaSearch : ICheckpointedHooks
{
    private readonly PeftModel _model;
    private readonly string _adapterName;
    private readonly DifforaConfig _config;

    // Dropped candidates' modules: a resumed run's optimizer still lists their parameters, so they are never disposed.
    private readonly List<IDisposable> _detached = [];

    public DifforaSearch(PeftModel model, string adapterName, DifforaConfig config)
    {
        _model = model;
        _adapterName = adapterName;
        _config = config;
    }

    /// <summary>The discretised matrix once <see cref="Discretise"/> ran, else null.</summary>
    public DifforaSelection? Selection { get; private set; }

    public string StateName => "diffora:" + _adapterName;

    /// <summary>The architecture logits get their own AdamW (DARTS trains α with Adam) at a scaled learning rate.</summary>
    public TrainingOptimizer? CustomOptimizer(IReadOnlyList<NamedParameter> trainable)
    {
        var gates = Layers().Select(l => l.Layer.Gate(_adapterName)).ToHashSet(ReferenceEqualityComparer.Instance);
        var mine = trainable.Where(p => gates.Contains(p.Parameter)).ToList();
        return mine.Count == 0 ? null
            : new AdamWOptimizer([new ParameterGroup("diffora_gates", mine, weightDecay: 0, learningRateScale: _config.ArchLearningRateScale)], new AdamWOptions { WeightDecay = 0 });
    }

    // ">=": a skipped (NaN/Inf) step never reaches OnSchedule, so the discretisation happens at the next good one.
    public IReadOnlyList<ParameterChange> OnSchedule(TrainingStep step, TrainingOptimizer optimizer) =>
        Selection is null && step.Step + 1 >= _config.SearchSteps ? Discretise(optimizer) : [];

    /// <summary>
    /// Ranks the candidates by γ, keeps the top K (<see cref="DifforaSelection.TopK"/>) and turns the adapter into a LoRA
    /// on them. Returns the replaced parameters (A, B and modules_to_save copies, same shapes: optimizer state kept);
    /// the dropped ones are removed from <paramref name="optimizer"/> when given.
    /// </summary>
    public IReadOnlyList<ParameterChange> Discretise(TrainingOptimizer? optimizer)
    {
        var candidates = Layers().Select(l => new DifforaCandidate(l.Name, l.Layer.GateValue(_adapterName), l.Layer.LoraParameterCount(_adapterName))).ToList();
        var selection = DifforaSelection.TopK(candidates, _config.SelectionRatio, _config.BudgetUnit);
        var dropped = Layers().Where(l => !selection.Selected.Contains(l.Name))
            .SelectMany(l => new[] { l.Layer.A(_adapterName), l.Layer.B(_adapterName) })
            .Concat(Layers().Select(l => l.Layer.Gate(_adapterName)))
            .ToList();
        var changes = ConvertToLora(selection);
        if (optimizer is not null)
        {
            foreach (var p in dropped.Where(optimizer.Owns))
            {
                optimizer.ResetState(p);
                foreach (var group in optimizer.Groups)
                {
                    group.Remove(p);
                }
            }
        }
        return changes;
    }

    private IReadOnlyList<ParameterChange> ConvertToLora(DifforaSelection selection)
    {
        using var noGrad = torch.no_grad();
        var layers = Layers().ToList();
        var kept = layers.Where(l => selection.Selected.Contains(l.Name))
            .ToDictionary(l => l.Name, l => (A: l.Layer.A(_adapterName), B: l.Layer.B(_adapterName)));
        var heads = _model.SavedModules().Where(w => w.Wrapper.Has(_adapterName))
            .ToDictionary(w => w.Name, w => w.Wrapper.AdapterTensors(_adapterName).ToDictionary(t => t.Key, t => (Old: t.Value, Value: t.Value.detach().clone())));
        // Keep the searched factors alive past DeleteAdapter: they are the weights the kept modules share.
        foreach (var (_, layer) in layers)
        {
            _detached.AddRange(layer.DetachAdapter(_adapterName));
        }
        var active = _model.ActiveAdapters.ToArray();
        var lora = LoraFor(selection, layers.Where(l => selection.Selected.Contains(l.Name)).Any(l => l.Layer.Base.FanInFanOut));
        _model.DeleteAdapter(_adapterName);
        _model.AddAdapter(_adapterName, lora);
        _model.SetActiveAdapters(active);

        var changes = new List<ParameterChange>();
        foreach (var (name, layer) in _model.AdapterLayers().Where(l => l.Layer.AdapterNames.Contains(_adapterName)))
        {
            var tensors = layer.AdapterTensors(_adapterName);
            var (oldA, oldB) = kept[name];
            changes.Add(Share(oldA, (Parameter)tensors["lora_A.weight"]));
            changes.Add(Share(oldB, (Parameter)tensors["lora_B.weight"]));
        }
        foreach (var (name, wrapper) in _model.SavedModules().Where(w => w.Wrapper.Has(_adapterName)))
        {
            foreach (var (key, t) in wrapper.AdapterTensors(_adapterName))
            {
                var (old, value) = heads[name][key];
                t.copy_(value);
                changes.Add(new ParameterChange((Parameter)old, (Parameter)t));
            }
        }
        Selection = selection;
        return changes;
    }

    // Weight sharing: the kept module's LoRA starts exactly from the searched factors.
    private static ParameterChange Share(Parameter searched, Parameter fresh)
    {
        fresh.copy_(searched);
        return new ParameterChange(searched, fresh);
    }

    private LoraConfig LoraFor(DifforaSelection selection, bool fanInFanOut)
    {
        var extra = new Dictionary<string, JsonElement>(_config.UnknownKeys ?? [])
        {
            [DifforaConfig.SelectedModulesKey] = JsonSerializer.SerializeToElement(selection.Selected),
            [DifforaConfig.GatesKey] = JsonSerializer.SerializeToElement(selection.Candidates.ToDictionary(c => c.Name, c => c.Gate)),
            ["diffora_selection_ratio"] = JsonSerializer.SerializeToElement(_config.SelectionRatio),
            ["diffora_budget_unit"] = JsonSerializer.SerializeToElement(_config.BudgetUnit),
            ["diffora_search_steps"] = JsonSerializer.SerializeToElement(_config.SearchSteps),
        };
        return _config.ToLora(TargetModules.Of([.. selection.Selected])) with { FanInFanOut = fanInFanOut, UnknownKeys = extra };
    }

    private IEnumerable<(string Name, DifforaLayer Layer)> Layers() =>
        _model.AdapterLayers().Where(l => l.Layer is DifforaLayer d && d.AdapterNames.Contains(_adapterName)).Select(l => (l.Name, (DifforaLayer)l.Layer));

    public JsonNode SaveState()
    {
        var state = new JsonObject { ["discretised"] = Selection is not null };
        if (Selection is { } s)
        {
            state["candidates"] = new JsonArray([.. s.Candidates.Select(c => (JsonNode)new JsonObject
            {
                ["name"] = c.Name,
                ["gate"] = c.Gate,
                ["lora_parameters"] = c.LoraParameters,
            })]);
            state["selected"] = new JsonArray([.. s.Selected.Select(n => (JsonNode)JsonValue.Create(n))]);
        }
        return state;
    }

    public IReadOnlyList<ParameterChange> RestoreState(JsonNode state)
    {
        if (state["discretised"]?.GetValue<bool>() != true || Selection is not null)
        {
            return [];
        }
        var candidates = state["candidates"]!.AsArray()
            .Select(c => new DifforaCandidate(c!["name"]!.GetValue<string>(), c["gate"]!.GetValue<double>(), c["lora_parameters"]!.GetValue<long>()))
            .ToList();
        var selected = state["selected"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        var missing = selected.FirstOrDefault(n => Layers().All(l => l.Name != n));
        if (missing is not null)
        {
            throw new ModelMismatchException($"DiffoRA checkpoint state selects '{missing}', which is not a DiffoRA candidate of this model");
        }
        return ConvertToLora(new DifforaSelection(selected, candidates));
    }
}
